//! The `loupe` command line against a running server.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_and_draws_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path()).await;
    let t = [0x42u8; 16];
    let mut err = pspan(t, 3, Some(2), 30, 40);
    err.status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    let mut root = pspan(t, 1, None, 0, 100);
    root.name = "agent".into();
    let req = request(vec![root, pspan(t, 2, Some(1), 10, 90), err]);
    assert_eq!(post_pb(&server.url, &req).await.status(), 200);
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "list", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(
        text.contains(&hex(&t)) && text.contains("agent") && text.contains("ERROR"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "get", &hex(&t), "--server", &server.url])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("└─ agent  [UNKNOWN]  100.0 ms"), "{text}");
    assert!(
        text.contains("   └─ span-2  [UNKNOWN]  80.0 ms  tokens 20"),
        "{text}"
    );
    assert!(
        text.contains("      └─ span-3  [UNKNOWN]  10.0 ms  tokens 30  ✗ ERROR boom"),
        "{text}"
    );
    let out = tokio::process::Command::new(loupe_bin())
        .args(["traces", "get", &hex(&t), "--json", "--server", &server.url])
        .output()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["spans"].as_array().unwrap().len(), 3);
    let out = tokio::process::Command::new(loupe_bin())
        .args([
            "traces",
            "get",
            "00000000000000000000000000000001",
            "--server",
            &server.url,
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}
