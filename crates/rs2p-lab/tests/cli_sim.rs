//! `rs2p-lab sim` (formerly `rs2p sim`): its JSON, and the same seed giving
//! the same run.

#[test]
fn cli_sim_writes_json() {
    let dir = std::env::temp_dir().join(format!("rs2p-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let run = |churn: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rs2p-lab"))
            .args(["sim", "--nodes", "24", "--keys", "20", "--lookups", "40", "--churn", churn, "--seed", "5"])
            .args(if churn == "0" { &["--min-success", "0.9"][..] } else { &[] })
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rs2p-lab sim failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        for field in
            ["nodes", "hops_mean", "hops_p99", "lookup_success", "msgs_per_lookup", "maint_bytes_per_node_s", "wall_s"]
        {
            assert!(v[field].is_number(), "field {field} missing in {v}");
        }
        assert_eq!(v["nodes"], 24);
        assert_eq!(v["lookups"], 40);
        v
    };
    let a = run("0");
    let b = run("0");
    assert_eq!(a["trace_hash"], b["trace_hash"], "same seed, different runs");
    assert_eq!(a["hops_mean"], b["hops_mean"]);
    let c = run("1");
    assert!(c["joined"].as_u64().unwrap() > 0, "no churn happened: {c}");
    let _ = std::fs::remove_dir_all(&dir);
}
