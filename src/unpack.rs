//! Safe unpacking of `.tar`, `.tar.gz`, `.tar.bz2`, `.tar.xz` and `.tar.lzma`
//! archives.
//!
//! The compression is recognised by its magic bytes, not the file name.
//! Members are written without ever following a symlink: every parent of a
//! member must be a real directory created by the archive. Refused, each
//! naming the archive and the member: absolute paths, `..` components,
//! symlinks whose target (resolved through the links in the tree) leaves it,
//! hard links to anything but an earlier regular file, device files, fifos
//! and unknown member types. setuid, setgid and sticky bits are dropped.
//!
//! A seed's root filesystem ([`unpack_rootfs`]) is a whole distro: its
//! symlinks may be absolute or climb out (`/etc/alternatives/awk` points to
//! `/usr/bin/mawk`); they only mean something inside the sandbox, and nothing
//! here follows them. Its device files and fifos are skipped and counted: the
//! sandbox brings its own `/dev`. Every other rule holds.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use tar::EntryType;
use thiserror::Error;

/// Why an archive was not unpacked.
#[derive(Debug, Error, Diagnostic)]
pub enum UnpackError {
    /// A member that would be unsafe to write.
    #[error("refusing to unpack {archive}: member `{member}` {reason}")]
    #[diagnostic(
        code(bootstrap::fetch::unsafe_archive),
        help("the archive matches its pinned sha256, so this is what upstream shipped; pin another artefact or drop `unpack` to use the file as-is")
    )]
    Refused {
        /// The archive's file name.
        archive: String,
        /// The member's path as written in the archive.
        member: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bytes are not an archive (or are damaged).
    #[error("cannot unpack {archive}: {reason}")]
    #[diagnostic(
        code(bootstrap::fetch::bad_archive),
        help("`unpack` accepts .tar, .tar.gz, .tar.bz2, .tar.xz and .tar.lzma; omit `unpack` to place the file as-is")
    )]
    Damaged {
        /// The archive's file name.
        archive: String,
        /// The decoder's or tar reader's message.
        reason: String,
    },
    /// The archive unpacks to more than the limits allow.
    #[error("refusing to unpack {archive}: it holds {what}")]
    #[diagnostic(
        code(bootstrap::fetch::archive_too_large),
        help("an archive that expands without end is hostile; if this one is genuine, raise --max-unpacked-size")
    )]
    TooLarge {
        /// The archive's file name.
        archive: String,
        /// Which limit it passed.
        what: String,
    },
    /// Writing the unpacked tree failed.
    #[error("cannot unpack {archive} into {}: {source}", path.display())]
    #[diagnostic(code(bootstrap::fetch::unpack_io), help("check free space and permissions of the state directory"))]
    Io {
        /// The archive's file name.
        archive: String,
        /// Where writing failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// `file` through the decompressor its magic bytes call for (gzip, bzip2,
/// xz, legacy lzma), or as it is.
pub fn decoder(mut file: File) -> io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 13];
    let n = file.read(&mut magic)?;
    use std::io::Seek;
    file.rewind()?;
    let buf = BufReader::with_capacity(1 << 20, file);
    let m = &magic[..n];
    Ok(if m.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if m.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(buf))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(buf))
    } else if legacy_lzma(m) {
        let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
        Box::new(liblzma::read::XzDecoder::new_stream(buf, stream))
    } else {
        Box::new(buf)
    })
}

/// Whether `m` starts a legacy `.lzma` (LZMA_alone) file, as GNU's
/// coreutils-6.10 is published: it has no magic number, so this asks for
/// what every lzma-utils file has (properties byte 0x5d, lc=3 lp=0 pb=2,
/// and a dictionary of a non-zero multiple of 64 KiB), which a tar header
/// (a file name of printable bytes) never starts with.
fn legacy_lzma(m: &[u8]) -> bool {
    m.len() >= 13 && m[0] == 0x5d && m[1] == 0 && m[2] == 0 && (m[3] != 0 || m[4] != 0)
}

/// Splits an archive path into its components, refusing absolute paths and
/// `..`; `.` and empty components are dropped.
fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("has an absolute path");
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("has a `..` component"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(comps: &[&[u8]]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(std::ffi::OsStr::from_bytes(c));
    }
    p
}

struct Unpacker<'a> {
    archive: &'a str,
    dest: &'a Path,
    strip: usize,
    symlinks: Vec<(String, PathBuf)>,
    /// Unpacking a seed's root filesystem (see the module doc).
    rootfs: bool,
    /// Device files and fifos skipped (rootfs only).
    skipped: u64,
}

impl Unpacker<'_> {
    fn refuse(&self, member: &str, reason: impl Into<String>) -> UnpackError {
        UnpackError::Refused { archive: self.archive.to_string(), member: member.to_string(), reason: reason.into() }
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        let path = path.to_path_buf();
        move |source| UnpackError::Io { archive: self.archive.to_string(), path, source }
    }

    /// The member's path inside the tree after stripping, or None when it is
    /// stripped away entirely.
    fn target(&self, member: &str, raw: &[u8]) -> Result<Option<PathBuf>, UnpackError> {
        let comps = components(raw).map_err(|r| self.refuse(member, r))?;
        Ok((comps.len() > self.strip).then(|| join(&comps[self.strip..])))
    }

    /// Makes every parent of `rel` a real directory, refusing to go through a
    /// symlink or a file.
    fn parents(&self, member: &str, rel: &Path) -> Result<(), UnpackError> {
        self.check_parents(member, rel, true)
    }

    /// Checks that no parent of `rel` is a symlink or a file; with `create`,
    /// makes the missing ones, otherwise stops at the first missing one (what
    /// is below it does not exist either).
    fn check_parents(&self, member: &str, rel: &Path, create: bool) -> Result<(), UnpackError> {
        let mut p = self.dest.to_path_buf();
        let Some(parent) = rel.parent() else { return Ok(()) };
        for c in parent.components() {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.is_symlink() => {
                    return Err(self.refuse(member, format!("is written through the symlink `{}`", shown(&p, self.dest))));
                }
                Ok(_) => return Err(self.refuse(member, format!("is below `{}`, which is not a directory", shown(&p, self.dest)))),
                Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&p).map_err(self.io(&p))?;
                }
                Err(e) => return Err(self.io(&p)(e)),
            }
        }
        Ok(())
    }

    /// Removes what is at `path` so a later member can replace it (tar
    /// semantics), but never a directory.
    fn clear(&self, member: &str, path: &Path) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Err(self.refuse(member, "would replace a directory")),
            Ok(_) => fs::remove_file(path).map_err(self.io(path)),
            Err(_) => Ok(()),
        }
    }

    fn entry(&mut self, mut entry: tar::Entry<'_, Box<dyn Read>>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let member = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink) {
            return Ok(());
        }
        let Some(rel) = self.target(&member, &raw)? else { return Ok(()) };
        let path = self.dest.join(&rel);
        // setuid, setgid and sticky dropped; the store normalises the rest.
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        match kind {
            EntryType::Regular | EntryType::Continuous => {
                self.parents(&member, &rel)?;
                self.clear(&member, &path)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    // O_EXCL: never opens through a symlink left at this name.
                    .mode(0o600)
                    .open(&path)
                    .map_err(self.io(&path))?;
                // No more than the header announced, whatever the stream holds.
                let size = entry.size();
                io::copy(&mut (&mut entry).take(size), &mut f).map_err(|e| UnpackError::Damaged {
                    archive: self.archive.to_string(),
                    reason: format!("reading member `{member}`: {e}"),
                })?;
                fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o600)).map_err(self.io(&path))?;
            }
            EntryType::Directory => {
                self.parents(&member, &rel)?;
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&path).map_err(self.io(&path))?;
                        fs::create_dir(&path).map_err(self.io(&path))?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(self.io(&path))?,
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.refuse(&member, "is a symlink without a target"))?
                    .into_owned();
                if target.first() == Some(&b'/') && !self.rootfs {
                    return Err(self.refuse(&member, format!("is a symlink to the absolute path `{}`", String::from_utf8_lossy(&target))));
                }
                self.parents(&member, &rel)?;
                self.clear(&member, &path)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path).map_err(self.io(&path))?;
                if !self.rootfs {
                    self.symlinks.push((member, rel));
                }
            }
            EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.refuse(&member, "is a hard link without a target"))?
                    .into_owned();
                let shown_target = String::from_utf8_lossy(&raw_target).into_owned();
                let target_rel = components(&raw_target)
                    .map_err(|r| self.refuse(&member, format!("is a hard link to `{shown_target}`, which {r}")))?;
                if target_rel.len() <= self.strip {
                    return Err(self.refuse(&member, format!("is a hard link to `{shown_target}`, which is stripped away")));
                }
                let target_rel = join(&target_rel[self.strip..]);
                // The target must be a regular file already in the tree, reached without symlinks.
                self.check_parents(&member, &target_rel, false)?;
                let target = self.dest.join(&target_rel);
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(self.refuse(
                            &member,
                            format!("is a hard link to `{shown_target}`, which is not an earlier regular file of the archive"),
                        ));
                    }
                }
                self.parents(&member, &rel)?;
                self.clear(&member, &path)?;
                fs::hard_link(&target, &path).map_err(self.io(&path))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo if self.rootfs => self.skipped += 1,
            EntryType::Char | EntryType::Block => return Err(self.refuse(&member, "is a device file")),
            EntryType::Fifo => return Err(self.refuse(&member, "is a fifo")),
            other => return Err(self.refuse(&member, format!("has the unsupported member type {:?}", other.as_byte() as char))),
        }
        Ok(())
    }

    /// Resolves a symlink through the links in the tree; true when it leaves
    /// the tree (or loops).
    fn escapes(&self, link: &Path) -> Result<bool, UnpackError> {
        let mut stack: Vec<std::ffi::OsString> =
            link.parent().map(|p| p.iter().map(|c| c.to_os_string()).collect()).unwrap_or_default();
        let first = fs::read_link(self.dest.join(link)).map_err(self.io(link))?;
        let mut pending: VecDeque<std::ffi::OsString> = first.iter().map(|c| c.to_os_string()).collect();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_bytes() {
                b"" | b"." => {}
                b"/" => return Ok(true),
                b".." => {
                    if stack.pop().is_none() {
                        return Ok(true);
                    }
                }
                _ => {
                    stack.push(c);
                    let here: PathBuf = stack.iter().collect();
                    if fs::symlink_metadata(self.dest.join(&here)).is_ok_and(|m| m.is_symlink()) {
                        hops += 1;
                        if hops > 40 {
                            return Ok(true);
                        }
                        let t = fs::read_link(self.dest.join(&here)).map_err(self.io(&here))?;
                        stack.pop();
                        for c in t.iter().rev() {
                            pending.push_front(c.to_os_string());
                        }
                    }
                }
            }
        }
        Ok(false)
    }
}

/// A reader's error message with anything unprintable (bytes of the
/// archive it quotes) replaced, and cut to a readable length.
fn printable(e: &io::Error) -> String {
    let s: String = e.to_string().chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if s.len() > 120 { format!("{}…", &s[..120]) } else { s }
}

fn shown(p: &Path, dest: &Path) -> String {
    p.strip_prefix(dest).unwrap_or(p).display().to_string()
}

/// Unpacks `archive` (named `name` in messages) into the existing empty
/// directory `dest`, dropping `strip` leading components of every member.
pub fn unpack(archive: &Path, name: &str, strip: u32, dest: &Path, max_bytes: u64) -> Result<(), UnpackError> {
    run(archive, name, strip, dest, false, max_bytes).map(drop)
}

/// What an archive may unpack to unless `--max-unpacked-size` says
/// otherwise: the largest trees of the real chain (rustc, LLVM) are a few
/// GB unpacked.
pub const DEFAULT_MAX_UNPACKED: u64 = 16 << 30;

/// The most members an archive may have (a Linux or gcc tree has under
/// 100,000): a bomb of empty files fills an inode table, not the disk.
pub const MAX_MEMBERS: u64 = 4_000_000;

/// Unpacks a seed's root filesystem tarball into the existing empty
/// directory `dest` (see the module doc for how it differs from [`unpack`]);
/// returns how many device files and fifos were skipped.
pub fn unpack_rootfs(archive: &Path, name: &str, dest: &Path, max_bytes: u64) -> Result<u64, UnpackError> {
    run(archive, name, 0, dest, true, max_bytes)
}

fn run(archive: &Path, name: &str, strip: u32, dest: &Path, rootfs: bool, max_bytes: u64) -> Result<u64, UnpackError> {
    let file = File::open(archive).map_err(|source| UnpackError::Io {
        archive: name.to_string(),
        path: archive.to_path_buf(),
        source,
    })?;
    let damaged = |e: io::Error, first: bool| UnpackError::Damaged {
        archive: name.to_string(),
        reason: if first { format!("it is not a tar archive ({})", printable(&e)) } else { printable(&e) },
    };
    let mut tar = tar::Archive::new(decoder(file).map_err(|e| damaged(e, true))?);
    let mut u = Unpacker { archive: name, dest, strip: strip as usize, symlinks: Vec::new(), rootfs, skipped: 0 };
    let mut first = true;
    let (mut members, mut bytes) = (0u64, 0u64);
    let too_large = |what: String| UnpackError::TooLarge { archive: name.to_string(), what };
    for entry in tar.entries().map_err(|e| damaged(e, true))? {
        let entry = entry.map_err(|e| damaged(e, first))?;
        members += 1;
        // Judged before anything is written: the header says the size.
        bytes = bytes.saturating_add(entry.size());
        if members > MAX_MEMBERS {
            return Err(too_large(format!("more than {MAX_MEMBERS} members")));
        }
        if bytes > max_bytes {
            return Err(too_large(format!("more than {max_bytes} bytes of files (--max-unpacked-size)")));
        }
        u.entry(entry)?;
        first = false;
    }
    for (member, rel) in std::mem::take(&mut u.symlinks) {
        // A later member may have replaced the link; only links still there count.
        if fs::symlink_metadata(dest.join(&rel)).is_ok_and(|m| m.is_symlink()) && u.escapes(&rel)? {
            let target = fs::read_link(dest.join(&rel)).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(u.refuse(&member, format!("is a symlink to `{target}`, which leads outside the tree")));
        }
    }
    Ok(u.skipped)
}
