//! A REAPI server that lost the blobs it was sent (restarted, its CAS in
//! memory) is sent them again, once, and the step runs. A test binary of
//! its own: it restarts the cluster (BOOTSTRAP_REMOTE_CLUSTER, the
//! directory tests/remote/cluster.sh runs it from), which no other test
//! may be using at the time.

mod common;

use std::fs;
use std::time::Duration;

use bootstrap::exec::remote::{RemoteBackend, RemoteOptions};
use bootstrap::exec::{Executor, NoEcho, Status};
use bootstrap::store::{LockMode, Store, Wait};
use common::remote::{self, request};

/// A server that lost the blobs it was sent (here: restarted, its CAS in
/// memory) is sent them again, once, and the step runs.
#[test]
fn a_server_that_lost_the_inputs_is_sent_them_again() {
    let Some((endpoint, instance)) = remote::server() else { return };
    let Some(cluster) = remote::cluster_dir() else {
        eprintln!("skipped: BOOTSTRAP_REMOTE_CLUSTER names no cluster directory this test may restart");
        return;
    };
    let lineage = format!("lost-{}", std::process::id());
    let property = format!("bootstrap-lineage={lineage}");
    let _w = remote::worker(&[&property]);
    let backend = RemoteBackend::connect(RemoteOptions { endpoint: endpoint.clone(), instance, split_lineages: true, properties: Vec::new() }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("state"), LockMode::Exclusive, Wait::Block, &|_| {}).unwrap();
    let r = backend.run(&request("busybox", &lineage, "mkdir /out; echo one > /out/x", Duration::from_secs(60)), &store, &NoEcho).unwrap();
    assert_eq!(r.status, Status::Succeeded);
    // The server forgets everything; the backend still believes it holds the seed's files.
    let port = endpoint.rsplit(':').next().unwrap().to_string();
    let script = common::root().join("tests/remote/cluster.sh");
    assert!(std::process::Command::new(&script).arg("stop").arg(&cluster).status().unwrap().success());
    assert!(std::process::Command::new(&script).arg("start").arg(&cluster).arg(&port).status().unwrap().success());
    let _w2 = remote::worker(&[&property]);
    let r = backend.run(&request("busybox", &lineage, "mkdir /out; echo two > /out/x", Duration::from_secs(60)), &store, &NoEcho).unwrap();
    assert_eq!(r.status, Status::Succeeded);
    let (digest, _) = r.layer.expect("a layer");
    assert_eq!(fs::read_to_string(store.layer_path(&digest).join("out/x")).unwrap(), "two\n");
}
