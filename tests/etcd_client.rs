//! The etcd client (`gslb::cluster::etcd`) against a real etcd on loopback:
//! KV, transactions, watches (including a compacted start revision) and
//! leases, as the cluster session and the config publisher use them.

mod common;

use std::time::Duration;

use common::etcd::EtcdServer;
use gslb::cluster::etcd::{Compare, Etcd, EtcdError, TxnOp, WatchEvent};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn kv_transactions_watches_and_leases_against_a_real_etcd() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    // A dead endpoint first: calls move on to the live one.
    let etcd = Etcd::new(&["http://127.0.0.1:1".to_string(), server.url()]).expect("client");
    runtime().block_on(async {
        // KV.
        let first = etcd.put("/t/a", b"1", 0).await.expect("put");
        etcd.put("/t/b", b"2", 0).await.expect("put");
        etcd.put("/u/c", b"3", 0).await.expect("put");
        let a = etcd.get("/t/a").await.expect("get").expect("/t/a exists");
        assert_eq!(
            (a.value.as_slice(), a.mod_revision, a.version),
            (&b"1"[..], first, 1)
        );
        assert_eq!(etcd.get("/t/none").await.expect("get"), None);
        let range = etcd.range_prefix("/t/").await.expect("range");
        let keys: Vec<&str> = range.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/t/a", "/t/b"]);

        // Compare-and-swap: only against the revision last read.
        assert!(
            etcd.put_if_unchanged("/t/a", b"2", a.mod_revision)
                .await
                .expect("cas")
        );
        assert!(
            !etcd
                .put_if_unchanged("/t/a", b"3", a.mod_revision)
                .await
                .expect("cas")
        );
        assert!(
            !etcd.put_if_unchanged("/t/b", b"x", 0).await.expect("cas"),
            "exists"
        );
        // A transaction with reads: its else branch reads what won.
        let result = etcd
            .txn(
                &[Compare::absent("/t/a")],
                &[TxnOp::Put {
                    key: "/t/a".into(),
                    value: b"never".to_vec(),
                    lease: 0,
                }],
                &[
                    TxnOp::Get { key: "/t/a".into() },
                    TxnOp::GetPrefix {
                        prefix: "/u/".into(),
                    },
                ],
            )
            .await
            .expect("txn");
        assert!(!result.succeeded);
        assert_eq!(result.reads[0][0].value, b"2");
        assert_eq!(result.reads[1][0].key, "/u/c");

        // A watch from the revision after a read sees every later change.
        let start = etcd.range_prefix("/t/").await.expect("range").revision + 1;
        let mut watch = etcd.watch_prefix("/t/", start).await.expect("watch");
        etcd.put("/t/d", b"4", 0).await.expect("put");
        etcd.put("/u/ignored", b"5", 0).await.expect("put");
        etcd.delete("/t/b").await.expect("delete");
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let batch = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("watch events in time")
                .expect("watch");
            seen.extend(batch);
        }
        assert!(matches!(&seen[0], WatchEvent::Put(kv) if kv.key == "/t/d" && kv.value == b"4"));
        assert!(matches!(&seen[1], WatchEvent::Delete { key, .. } if key == "/t/b"));

        // Leases: keys vanish with a revoked lease; a gone lease is reported.
        let lease = etcd
            .grant_lease(Duration::from_secs(5))
            .await
            .expect("grant");
        assert!(etcd.keep_alive(lease).await.expect("keepalive") > Duration::ZERO);
        etcd.put("/t/leased", b"x", lease).await.expect("put");
        assert_eq!(
            etcd.get("/t/leased").await.expect("get").map(|kv| kv.lease),
            Some(lease)
        );
        etcd.revoke_lease(lease).await.expect("revoke");
        assert_eq!(etcd.get("/t/leased").await.expect("get"), None);
        assert_eq!(
            etcd.keep_alive(lease).await,
            Err(EtcdError::LeaseExpired(lease))
        );

        assert_eq!(etcd.delete_prefix("/u/").await.expect("delete prefix"), 2);

        // A prefix larger than one page is read whole, in key order.
        for batch in 0..10 {
            let ops: Vec<TxnOp> = (0..120)
                .map(|i| TxnOp::Put {
                    key: format!("/big/{:05}", batch * 120 + i),
                    value: b"v".to_vec(),
                    lease: 0,
                })
                .collect();
            assert!(etcd.txn(&[], &ops, &[]).await.expect("txn").succeeded);
        }
        let big = etcd.range_prefix("/big/").await.expect("range");
        assert_eq!(big.kvs.len(), 1200);
        assert!(big.kvs.windows(2).all(|w| w[0].key < w[1].key));
    });

    // A watch from a compacted revision says so (the caller reads again).
    compact(&server, "/t/a");
    runtime().block_on(async {
        let mut watch = etcd.watch_prefix("/t/", 1).await.expect("watch");
        let result = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("an answer in time");
        assert!(matches!(result, Err(EtcdError::Compacted(_))), "{result:?}");
    });
}

/// Compacts the store up to its current revision.
fn compact(server: &EtcdServer, key: &str) {
    let etcd = Etcd::new(&[server.url()]).expect("client");
    let revision = runtime()
        .block_on(etcd.put(key, b"compact", 0))
        .expect("put");
    server.post_json(
        "/v3/kv/compaction",
        &format!(r#"{{"revision":"{revision}"}}"#),
    );
}
