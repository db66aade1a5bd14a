//! The server's content-addressable storage: which blobs it lacks, sending
//! them (small ones in batches, large ones through ByteStream), and reading
//! them back, each checked against its digest: a blob is never trusted to
//! be what the server says it is.

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream as bs;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::transport::Channel;

use super::merkle::{Blob, digest};

/// Blobs at most this big go in batches; bigger ones stream.
const BATCH_BLOB: i64 = 1 << 20;
/// The most bytes of blobs one batch request carries (gRPC's default
/// message limit is 4 MiB).
const BATCH_BYTES: i64 = 3 << 20;
/// The chunk size of a ByteStream write.
const CHUNK: usize = 1 << 20;
/// The most digests one FindMissingBlobs request asks about.
const FIND_BATCH: usize = 4096;
/// How many batch or stream transfers are in flight at once: a tree of
/// thousands of files must not be thousands of round trips one after the
/// other, nor one request the server holds all of in memory.
const IN_FLIGHT: usize = 4;

/// Why a CAS call failed.
#[derive(Debug)]
pub enum CasError {
    /// The server failed the call.
    Rpc(tonic::Status),
    /// The server does not have the blob (it lost it, or never had it).
    Missing(String),
    /// It gave bytes that are not the blob's.
    Corrupt(String),
    /// A local file could not be read or written.
    Io(String),
}

impl std::fmt::Display for CasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CasError::Rpc(s) => write!(f, "{}: {}", s.code(), s.message()),
            CasError::Missing(d) => write!(f, "the server does not have blob {d}"),
            CasError::Corrupt(d) => write!(f, "the server gave bytes that are not blob {d}"),
            CasError::Io(m) => write!(f, "{m}"),
        }
    }
}

impl From<tonic::Status> for CasError {
    fn from(s: tonic::Status) -> Self {
        CasError::Rpc(s)
    }
}

/// Calls `f` again, up to six times with growing pauses (0.1 s to 3.2 s),
/// while the server says it is busy or not there for a moment
/// (`RESOURCE_EXHAUSTED`, `UNAVAILABLE`): a loaded server must not fail a
/// run that would succeed a second later.
pub async fn retry<T, F, Fut>(mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = std::time::Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match f().await {
            Err(s) if matches!(s.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) && tries < 6 => {
                tries += 1;
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            r => return r,
        }
    }
}

/// `hash/size`, as resource names and messages spell a digest.
pub fn show(d: &re::Digest) -> String {
    format!("{}/{}", d.hash, d.size_bytes)
}

/// The CAS of one instance.
#[derive(Clone)]
pub struct Cas {
    instance: String,
    cas: ContentAddressableStorageClient<Channel>,
    bytestream: bs::byte_stream_client::ByteStreamClient<Channel>,
}

impl Cas {
    /// The CAS of `instance` over `channel`.
    pub fn new(channel: Channel, instance: &str) -> Cas {
        Cas {
            instance: instance.to_string(),
            cas: ContentAddressableStorageClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            bytestream: bs::byte_stream_client::ByteStreamClient::new(channel).max_decoding_message_size(64 << 20),
        }
    }

    /// Which of `digests` the server lacks.
    pub async fn missing(&self, digests: Vec<re::Digest>) -> Result<Vec<re::Digest>, CasError> {
        let mut out = Vec::new();
        for chunk in digests.chunks(FIND_BATCH) {
            let req = re::FindMissingBlobsRequest { instance_name: self.instance.clone(), blob_digests: chunk.to_vec(), digest_function: 0 };
            out.extend(retry(|| { let mut c = self.cas.clone(); let a = req.clone(); async move { c.find_missing_blobs(a).await } }).await?.into_inner().missing_blob_digests);
        }
        Ok(out)
    }

    /// Sends `blobs` (those the server lacks) to it: small ones in
    /// batches, large ones streamed, [`IN_FLIGHT`] requests at a time.
    pub async fn upload(&self, blobs: Vec<(re::Digest, Blob)>) -> Result<(), CasError> {
        use futures_util::stream::{StreamExt, TryStreamExt};
        let (small, large): (Vec<_>, Vec<_>) = blobs.into_iter().partition(|(d, _)| d.size_bytes <= BATCH_BLOB);
        let jobs = batches(small, |(d, _)| d.size_bytes).into_iter().map(Job::Batch).chain(large.into_iter().map(Job::One));
        futures_util::stream::iter(jobs)
            .map(|job| async move {
                match job {
                    Job::Batch(blobs) => {
                        let requests = blobs.into_iter().map(|(d, blob)| Ok(re::batch_update_blobs_request::Request { digest: Some(d), data: read(&blob)?, compressor: 0 })).collect::<Result<Vec<_>, CasError>>()?;
                        self.send_batch(requests).await
                    }
                    Job::One((d, blob)) => self.write(&d, read(&blob)?).await,
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn send_batch(&self, requests: Vec<re::batch_update_blobs_request::Request>) -> Result<(), CasError> {
        let req = re::BatchUpdateBlobsRequest { instance_name: self.instance.clone(), requests, digest_function: 0 };
        for r in retry(|| { let mut c = self.cas.clone(); let a = req.clone(); async move { c.batch_update_blobs(a).await } }).await?.into_inner().responses {
            if let Some(s) = r.status.filter(|s| s.code != 0) {
                let d = r.digest.as_ref().map(show).unwrap_or_default();
                return Err(CasError::Rpc(tonic::Status::new(tonic::Code::from(s.code), format!("storing blob {d}: {}", s.message))));
            }
        }
        Ok(())
    }

    async fn write(&self, d: &re::Digest, data: Vec<u8>) -> Result<(), CasError> {
        let name = format!("{}/uploads/{}/blobs/{}", self.instance, upload_id(), show(d));
        let total = data.len();
        let mut reqs = Vec::new();
        let mut offset = 0;
        loop {
            let end = (offset + CHUNK).min(total);
            reqs.push(bs::WriteRequest {
                resource_name: if offset == 0 { name.clone() } else { String::new() },
                write_offset: offset as i64,
                finish_write: end == total,
                data: data[offset..end].to_vec(),
            });
            offset = end;
            if offset == total {
                break;
            }
        }
        let committed = self.bytestream.clone().write(futures_util::stream::iter(reqs)).await?.into_inner().committed_size;
        if committed != total as i64 && committed != -1 {
            return Err(CasError::Rpc(tonic::Status::data_loss(format!("the server kept {committed} of the {total} bytes of blob {}", show(d)))));
        }
        Ok(())
    }

    /// Reads blob `d`, checking its bytes against it.
    pub async fn read(&self, d: &re::Digest) -> Result<Vec<u8>, CasError> {
        let mut got = Vec::new();
        self.read_each(vec![d.clone()], |_, data| {
            got = data;
            Ok(())
        })
        .await?;
        Ok(got)
    }

    /// Reads every blob of `digests` (each once, each checked against its
    /// digest) and hands it to `each` as it arrives: small ones in
    /// batches, large ones streamed, [`IN_FLIGHT`] requests at a time.
    pub async fn read_each(&self, digests: Vec<re::Digest>, mut each: impl FnMut(&re::Digest, Vec<u8>) -> Result<(), CasError>) -> Result<(), CasError> {
        use futures_util::stream::StreamExt;
        let mut seen = std::collections::HashSet::new();
        let (mut small, mut large) = (Vec::new(), Vec::new());
        for d in digests {
            if !seen.insert(d.hash.clone()) {
                continue;
            }
            if d.size_bytes == 0 {
                // Nothing to ask for, but only the empty blob is empty.
                if digest(&[]) != d {
                    return Err(CasError::Corrupt(show(&d)));
                }
                each(&d, Vec::new())?;
            } else if d.size_bytes <= BATCH_BLOB {
                small.push(d);
            } else {
                large.push(d);
            }
        }
        let jobs = batches(small, |d| d.size_bytes).into_iter().map(Job::Batch).chain(large.into_iter().map(Job::One));
        let mut arriving = futures_util::stream::iter(jobs)
            .map(|job| async move {
                match job {
                    Job::Batch(ds) => self.read_batch(ds).await,
                    Job::One(d) => Ok(vec![(d.clone(), self.read_stream(&d).await?)]),
                }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some(blobs) = arriving.next().await {
            for (d, data) in blobs? {
                if digest(&data) != d {
                    return Err(CasError::Corrupt(show(&d)));
                }
                each(&d, data)?;
            }
        }
        Ok(())
    }

    /// Small blobs in one `BatchReadBlobs`, unchecked.
    async fn read_batch(&self, digests: Vec<re::Digest>) -> Result<Vec<(re::Digest, Vec<u8>)>, CasError> {
        let req = re::BatchReadBlobsRequest { instance_name: self.instance.clone(), digests: digests.clone(), acceptable_compressors: Vec::new(), digest_function: 0 };
        let mut by_hash: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
        for r in retry(|| { let mut c = self.cas.clone(); let a = req.clone(); async move { c.batch_read_blobs(a).await } }).await?.into_inner().responses {
            let d = r.digest.as_ref().map(show).unwrap_or_default();
            match r.status {
                Some(s) if s.code == tonic::Code::NotFound as i32 => return Err(CasError::Missing(d)),
                Some(s) if s.code != 0 => return Err(CasError::Rpc(tonic::Status::new(tonic::Code::from(s.code), format!("reading blob {d}: {}", s.message)))),
                _ => {
                    by_hash.insert(r.digest.map(|d| d.hash).unwrap_or_default(), r.data);
                }
            }
        }
        // A blob the answer left out is one the server does not have.
        digests.into_iter().map(|d| by_hash.remove(&d.hash).map(|data| (d.clone(), data)).ok_or_else(|| CasError::Missing(show(&d)))).collect()
    }

    /// One large blob through ByteStream, unchecked.
    async fn read_stream(&self, d: &re::Digest) -> Result<Vec<u8>, CasError> {
        let req = bs::ReadRequest { resource_name: format!("{}/blobs/{}", self.instance, show(d)), read_offset: 0, read_limit: 0 };
        let mut stream = match retry(|| { let mut c = self.bytestream.clone(); let a = req.clone(); async move { c.read(a).await } }).await {
            Ok(s) => s.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => return Err(CasError::Missing(show(d))),
            Err(s) => return Err(s.into()),
        };
        let mut data = Vec::with_capacity(d.size_bytes.clamp(0, 1 << 30) as usize);
        loop {
            match stream.message().await {
                Ok(Some(m)) => data.extend_from_slice(&m.data),
                Ok(None) => return Ok(data),
                Err(s) if s.code() == tonic::Code::NotFound => return Err(CasError::Missing(show(d))),
                Err(s) => return Err(s.into()),
            }
        }
    }
}

/// One transfer: several small blobs in a batch, or one large blob.
enum Job<T> {
    Batch(Vec<T>),
    One(T),
}

/// `items` cut into batches of at most [`BATCH_BYTES`] (by `size`).
fn batches<T>(items: Vec<T>, size: impl Fn(&T) -> i64) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let n = size(&item);
        match out.last_mut() {
            Some(last) if bytes + n <= BATCH_BYTES => last.push(item),
            _ => {
                out.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += n;
    }
    out
}

fn read(blob: &Blob) -> Result<Vec<u8>, CasError> {
    match blob {
        Blob::Bytes(b) => Ok(b.clone()),
        Blob::File(p) => std::fs::read(p).map_err(|e| CasError::Io(format!("read {}: {e}", p.display()))),
    }
}

/// A name for one upload, unique enough: the process and a counter.
fn upload_id() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    // A UUID-shaped name, as the ByteStream convention asks for.
    let h = blake3::hash(format!("{pid}-{n}-{t}").as_bytes()).to_hex();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::{BATCH_BYTES, batches};

    #[test]
    fn batches_keep_order_and_stay_under_the_byte_limit() {
        let sizes = vec![BATCH_BYTES - 10, 5, 5, 1, BATCH_BYTES, 0, 7];
        let got = batches(sizes, |n| *n);
        assert_eq!(got, vec![vec![BATCH_BYTES - 10, 5, 5], vec![1], vec![BATCH_BYTES, 0], vec![7]]);
        assert!(got.iter().all(|b| b.iter().sum::<i64>() <= BATCH_BYTES));
        assert!(batches(Vec::<i64>::new(), |n| *n).is_empty());
    }
}
