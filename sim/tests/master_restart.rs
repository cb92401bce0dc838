//! A master killed and restarted mid-run rebuilds its namespace from its checkpoint and operation
//! log on the disk model (GFS §2.6.3), relearns replica locations from heartbeats, and serves
//! reads and new mutations again.

use madsim::runtime::{Handle, Runtime};
use node::client::Client;
use node::trace;
use node::ClusterConfig;
use std::time::Duration;

#[test]
fn restarted_master_recovers_namespace_and_data() {
    // Checkpoint every 5 records, so recovery uses a checkpoint and a log tail.
    let cfg = ClusterConfig {
        checkpoint_every_records: 5,
        ..ClusterConfig::default()
    };
    let rt = Runtime::with_seed_and_config(42, madsim::Config::default());
    trace::install(trace::Detail::Protocol);
    let c = cfg.clone();
    rt.block_on(async move {
        let handle = Handle::current();
        let opts = sim::options::RunOptions {
            clients: 1,
            ..Default::default()
        };
        let world = sim::run::start_cluster(&handle, &c, &opts, None);
        let master = world.master;
        let client_node = handle.get_node(world.clients[0]).unwrap();
        let grace = Duration::from_millis(c.master_grace_ms() + c.heartbeat_ms);
        let c2 = c.clone();
        let (before, contents) = client_node
            .spawn(async move {
                let client = Client::new(0, c2).await.unwrap();
                madsim::time::sleep(grace).await;
                for i in 0..6 {
                    let path = format!("/dir/file{i}");
                    client.create(&path).await.unwrap();
                    client
                        .write(&path, 10 * i, &[i as u8 + 1; 100])
                        .await
                        .unwrap();
                    client.append(&path, b"record").await.unwrap();
                }
                client.delete("/dir/file3").await.unwrap();
                let before = client.list().await.unwrap();
                let mut contents = Vec::new();
                for f in &before {
                    contents.push(client.read(&f.path, 0, f.size_bytes).await.unwrap());
                }
                (before, contents)
            })
            .await
            .unwrap();
        assert_eq!(before.len(), 5);

        handle.kill(master);
        madsim::time::sleep(Duration::from_millis(50)).await;
        handle.restart(master);

        let c3 = c.clone();
        client_node
            .spawn(async move {
                let client = Client::new(0, c3).await.unwrap();
                // Listing works at once: the namespace comes from the log, not from heartbeats.
                let listed = client.list().await.unwrap();
                let paths = |l: &[node::client::FileInfo]| {
                    l.iter().map(|f| f.path.clone()).collect::<Vec<_>>()
                };
                assert_eq!(paths(&listed), paths(&before));
                madsim::time::sleep(grace).await;
                let after = client.list().await.unwrap();
                assert_eq!(
                    after, before,
                    "sizes come back once heartbeats name the replicas"
                );
                for (f, bytes) in after.iter().zip(&contents) {
                    assert_eq!(
                        &client.read(&f.path, 0, f.size_bytes).await.unwrap(),
                        bytes,
                        "{}",
                        f.path
                    );
                }
                // New mutations need new leases, which the restarted master grants after its grace.
                client
                    .write("/dir/file0", 0, b"after restart")
                    .await
                    .unwrap();
                client.create("/dir/new").await.unwrap();
                assert_eq!(
                    client.read("/dir/file0", 0, 13).await.unwrap(),
                    b"after restart"
                );
                assert!(matches!(
                    client.create("/dir/file1").await,
                    Err(node::GfsError::AlreadyExists(_))
                ));
                assert!(matches!(
                    client.read("/dir/file3", 0, 1).await,
                    Err(node::GfsError::NotFound(_))
                ));
            })
            .await
            .unwrap();
    });
    let events = trace::take();
    let count = |f: fn(&trace::Event) -> bool| events.iter().filter(|e| f(&e.event)).count();
    assert_eq!(
        count(|e| matches!(e, trace::Event::MasterStarted { .. })),
        1
    );
    let checkpoints = count(|e| matches!(e, trace::Event::CheckpointWritten { .. }));
    assert!(checkpoints >= 2, "the log was checkpointed: {checkpoints}");
    let recovered: Vec<_> = events
        .iter()
        .filter_map(|e| match e.event {
            trace::Event::MasterRecovered { files, .. } => Some(files),
            _ => None,
        })
        .collect();
    assert_eq!(recovered, [5], "one recovery, with the five files");
}
