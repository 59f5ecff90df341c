//! Operations end to end: the admin API (`/status`, `/override`, `/reload`,
//! `/metrics`), tokens, `gslb reload`, the query log, file watching, and
//! reloads under a steady stream of queries. The real binary on loopback
//! ports; answers checked with `dig` or the harness's own UDP client. Every
//! wait is a bounded poll.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{
    GslbServer, QueryBuilder, TempDir, dig, ecs_option, http, parse_reply, poll_until, rtype,
    run_gslb,
};

/// Longest wait for an expected change.
const DEADLINE: Duration = Duration::from_secs(10);
const WWW: &str = "www.example.test";

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

/// A config with two pools: `eu` (two endpoints, multivalue) then `us`;
/// `extra` is appended (more pools, settings).
fn config(server: &str, eu: &[&str], extra: &str) -> String {
    let eu: Vec<String> = eu
        .iter()
        .map(|a| format!("{{ address = \"{a}\" }}"))
        .collect();
    format!(
        r#"
[server]
{server}

[[zone]]
origin = "example.test"
file = "{zone}"

[pools.eu]
endpoints = [{eu}]

[pools.us]
endpoints = [{{ address = "198.51.100.10" }}]

[services."{WWW}"]
policy = "failover"
pools = ["eu", "us"]
selection = "multivalue"
max_records = 4
ttl = 5
{extra}
"#,
        zone = repo("zones/example.test.zone"),
        eu = eu.join(", "),
    )
}

/// Starts gslb on `config` written into `dir`, with an API on a free port.
fn start(dir: &TempDir, text: &str) -> (GslbServer, PathBuf) {
    let path = dir.write("gslb.toml", text);
    let server = GslbServer::start(&[
        "-c",
        path.to_str().expect("utf-8 path"),
        "--api",
        "127.0.0.1:0",
    ]);
    (server, path)
}

/// The A records of `name`, sorted.
fn answers(server: &GslbServer, name: &str) -> Vec<String> {
    dig(server.addr(), &[name, "A"]).sorted_rdata()
}

/// Polls until `name` answers exactly `want`.
fn wait_for(server: &GslbServer, name: &str, want: &[&str]) {
    let mut last = Vec::new();
    let ok = poll_until(DEADLINE, || {
        last = answers(server, name);
        last == want
    });
    assert!(ok, "{name}: wanted {want:?}, still {last:?}");
}

fn post_json(server: &GslbServer, path: &str, body: &str) -> common::HttpReply {
    server.admin("POST", path, &[("Content-Type", "application/json")], body)
}

fn status(server: &GslbServer) -> serde_json::Value {
    let reply = http(server.api(), "GET", "/status", &[], "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The endpoint object with `key` in `/status`'s top-level pools.
fn endpoint(status: &serde_json::Value, key: &str) -> serde_json::Value {
    status["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["endpoints"].as_array().into_iter().flatten())
        .find(|e| e["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint {key} in {status:#}"))
}

#[test]
fn status_lists_zones_services_pools_and_endpoints() {
    let dir = TempDir::new("status");
    let (server, _) = start(&dir, &config("", &["192.0.2.10", "192.0.2.11"], ""));
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.11"]);
    let status = status(&server);
    assert_eq!(status["zones"], serde_json::json!(["example.test."]));
    let service = &status["services"][0];
    assert_eq!(service["name"], "www.example.test.");
    assert_eq!(service["policy"], "failover");
    assert_eq!(service["selection"], "multivalue");
    assert_eq!(service["pools"][0]["name"], "eu");
    assert_eq!(service["pools"][1]["name"], "us");
    assert!(service["answers_last_minute"].as_u64().unwrap() >= 1);
    assert_eq!(service["pools"][0]["share_percent"], 100.0);
    let eu = endpoint(&status, "eu/192.0.2.10");
    assert_eq!(eu["state"], "up");
    assert_eq!(eu["probe"], "up");
    assert_eq!(eu["override"], "none");
    assert_eq!(eu["config_down"], false);
    assert!(eu["answers_total"].as_u64().unwrap() >= 1);
    assert_eq!(eu["share_percent"], 50.0);
    assert!(status["events"].as_array().is_some());
    assert_eq!(status["auth_required"], true);
    // The page and unknown paths.
    let page = http(server.api(), "GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("eu/192.0.2.10"), "initial data inlined");
    assert_eq!(http(server.api(), "GET", "/nope", &[], "").status, 404);
}

#[test]
fn overrides_per_endpoint_and_pool_change_answers() {
    let dir = TempDir::new("override");
    // A probed pool whose only endpoint is down (nothing listens on the port).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let extra = format!(
        r#"
[checks.tcp]
kind = "tcp"
interval = "200ms"
timeout = "150ms"
port = {closed}
initial = "down"

[pools.dead]
check = "tcp"
endpoints = [{{ address = "127.0.0.1" }}]

[services."dead.example.test"]
policy = "failover"
pools = ["dead", "us"]
"#
    );
    let (server, _) = start(&dir, &config("", &["192.0.2.10", "192.0.2.11"], &extra));
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.11"]);
    wait_for(&server, "dead.example.test", &["198.51.100.10"]);

    // Endpoint: force down (JSON body), then clear.
    let reply = post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/192.0.2.10","state":"down"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "force-down");
    wait_for(&server, WWW, &["192.0.2.11"]);
    assert_eq!(
        endpoint(&status(&server), "eu/192.0.2.10")["state"],
        "force-down"
    );
    post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/192.0.2.10","state":"none"}"#,
    );
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.11"]);

    // Endpoint: drain, as query parameters.
    let before_drain = status(&server)["now_unix"].as_f64().unwrap();
    let reply = server.admin(
        "POST",
        "/override?endpoint=eu/192.0.2.11&state=drain",
        &[],
        "",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for(&server, WWW, &["192.0.2.10"]);
    // Its state holds since the drain, not since its last probe change,
    // and once cleared, since the clearing.
    let drained = status(&server);
    let since = |status: &serde_json::Value| {
        endpoint(status, "eu/192.0.2.11")["state_since_unix"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(endpoint(&drained, "eu/192.0.2.11")["state"], "drain");
    let set_at = since(&drained);
    assert!(set_at >= before_drain - 0.001, "{drained}");
    std::thread::sleep(Duration::from_millis(20));
    server.admin(
        "POST",
        "/override?endpoint=eu/192.0.2.11&state=none",
        &[],
        "",
    );
    let cleared = status(&server);
    assert_eq!(endpoint(&cleared, "eu/192.0.2.11")["state"], "up");
    assert!(since(&cleared) > set_at, "{cleared}");
    assert!(since(&cleared) <= cleared["now_unix"].as_f64().unwrap());

    // Pool: drain sends everyone to the next pool; the endpoints show it.
    let reply = post_json(&server, "/override", r#"{"pool":"eu","state":"drain"}"#);
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for(&server, WWW, &["198.51.100.10"]);
    let now = status(&server);
    assert_eq!(
        endpoint(&now, "eu/192.0.2.10")["effective_override"],
        "drain"
    );
    assert_eq!(now["pool_overrides"]["eu"], "drain");
    // A JSON body sent as curl's default form type (`curl -d '{...}'`) is
    // taken as JSON, and answered in JSON.
    let reply = server.admin(
        "POST",
        "/override",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        r#"{"pool":"eu","state":"drain"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "drain");
    // Pool force-down as a plain HTML form: 303 back to the page.
    let reply = server.admin(
        "POST",
        "/override",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "pool=eu&state=down",
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some("/"));
    assert_eq!(status(&server)["pool_overrides"]["eu"], "force-down");
    post_json(&server, "/override", r#"{"pool":"eu","state":"none"}"#);
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.11"]);

    // Force up beats a failing probe.
    post_json(
        &server,
        "/override",
        r#"{"endpoint":"dead/127.0.0.1","state":"up"}"#,
    );
    wait_for(&server, "dead.example.test", &["127.0.0.1"]);
    assert_eq!(
        endpoint(&status(&server), "dead/127.0.0.1")["probe"],
        "down"
    );

    // Bad requests.
    let bad = post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/192.0.2.10","state":"sideways"}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    let unknown = post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/203.0.113.1","state":"down"}"#,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let both = post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/192.0.2.10","pool":"eu","state":"down"}"#,
    );
    assert_eq!(both.status, 400, "{}", both.body);
    let big = "x".repeat(70 * 1024);
    let too_big = post_json(
        &server,
        "/override",
        &format!(r#"{{"endpoint":"{big}","state":"down"}}"#),
    );
    assert_eq!(too_big.status, 413);
    // A browser request from another site is refused.
    let csrf = server.admin(
        "POST",
        "/override?pool=eu&state=down",
        &[
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        "",
    );
    assert_eq!(csrf.status, 403);
    assert_eq!(
        status(&server)["pool_overrides"]["eu"],
        serde_json::Value::Null
    );
}

#[test]
fn overrides_survive_reload_and_pool_overrides_reach_new_endpoints() {
    let dir = TempDir::new("keep");
    let (server, path) = start(&dir, &config("", &["192.0.2.10", "192.0.2.11"], ""));
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.11"]);
    post_json(
        &server,
        "/override",
        r#"{"endpoint":"eu/192.0.2.11","state":"down"}"#,
    );
    wait_for(&server, WWW, &["192.0.2.10"]);

    // Reload with a third endpoint: the endpoint override stays.
    std::fs::write(
        &path,
        config("", &["192.0.2.10", "192.0.2.11", "192.0.2.12"], ""),
    )
    .unwrap();
    let reply = server.admin("POST", "/reload", &[], "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["ok"], true);
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.12"]);

    // A pool override applies to endpoints added by a later reload.
    post_json(&server, "/override", r#"{"pool":"eu","state":"down"}"#);
    wait_for(&server, WWW, &["198.51.100.10"]);
    std::fs::write(
        &path,
        config(
            "",
            &["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"],
            "",
        ),
    )
    .unwrap();
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 200);
    let now = status(&server);
    assert_eq!(
        endpoint(&now, "eu/192.0.2.13")["pool_override"],
        "force-down"
    );
    assert_eq!(endpoint(&now, "eu/192.0.2.11")["override"], "force-down");
    wait_for(&server, WWW, &["198.51.100.10"]);
    // Cleared, the endpoint's own override still holds.
    post_json(&server, "/override", r#"{"pool":"eu","state":"none"}"#);
    wait_for(&server, WWW, &["192.0.2.10", "192.0.2.12", "192.0.2.13"]);
}

#[test]
fn mutating_calls_need_the_configured_token() {
    let dir = TempDir::new("token");
    let (server, path) = start(
        &dir,
        &config(r#"api_token = "s3cret-token""#, &["192.0.2.10"], ""),
    );
    let body = r#"{"endpoint":"eu/192.0.2.10","state":"down"}"#;
    let json = ("Content-Type", "application/json");
    let none = http(server.api(), "POST", "/override", &[json], body);
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let wrong = http(
        server.api(),
        "POST",
        "/override",
        &[json, ("Authorization", "Bearer s3cret-toke")],
        body,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(http(server.api(), "POST", "/reload", &[], "").status, 401);
    let right = http(
        server.api(),
        "POST",
        "/override",
        &[json, ("Authorization", "Bearer s3cret-token")],
        body,
    );
    assert_eq!(right.status, 200, "{}", right.body);
    wait_for(&server, WWW, &["198.51.100.10"]);
    // Reads stay open and never show the token.
    let status = http(server.api(), "GET", "/status", &[], "");
    assert_eq!(status.json()["auth_required"], true);
    assert!(!status.body.contains("s3cret"));
    assert!(!server.stderr().contains("s3cret"));
    // `gslb reload` takes the token from the config.
    let api = server.api().to_string();
    let out = run_gslb(&["reload", "-c", path.to_str().unwrap(), "--api", &api]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    // Without a token (the default config has none): 401.
    let out = run_gslb(&["reload", "--api", &api]);
    assert_eq!(out.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("401"), "{}", out.stderr);
    // A config that does not load names no server: nothing is sent.
    let out = run_gslb(&["reload", "--config", "/nonexistent.toml", "--api", &api]);
    assert_eq!(out.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("/nonexistent.toml"), "{}", out.stderr);
    assert!(!out.stderr.contains("401"), "{}", out.stderr);
}

#[test]
fn serve_refuses_an_api_others_can_reach_without_a_token() {
    let dir = TempDir::new("refuse");
    let path = dir.write(
        "gslb.toml",
        &config("api_require_token = false", &["192.0.2.10"], ""),
    );
    let out = run_gslb(&[
        "serve",
        "-c",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--api",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("needs a token"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("listening on"),
        "nothing bound: {}",
        out.stdout
    );
}

#[test]
fn issue_21_mutating_calls_need_a_token_by_default_kept_in_the_state_dir() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("token-default");
    let (server, path) = start(&dir, &config("", &["192.0.2.10"], ""));
    // `serve` made a token file beside the config, readable by its user only.
    let file = dir.path().join("state/api-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    let dir_mode = std::fs::metadata(dir.path().join("state"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let token = server.token();
    assert_eq!(token.len(), 64);
    assert!(!server.stderr().contains(&token));
    let body = r#"{"endpoint":"eu/192.0.2.10","state":"down"}"#;
    assert_eq!(
        http(server.api(), "POST", "/override", &[], body).status,
        401
    );
    assert_eq!(http(server.api(), "POST", "/reload", &[], "").status, 401);
    assert_eq!(
        http(server.api(), "GET", "/status", &[], "").json()["auth_required"],
        true
    );
    assert_eq!(server.admin("POST", "/override", &[], body).status, 200);
    wait_for(&server, WWW, &["198.51.100.10"]);
    // `gslb reload` finds the token in the state directory.
    let api = server.api().to_string();
    let out = run_gslb(&["reload", "-c", path.to_str().unwrap(), "--api", &api]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    // So do `gslb override` and `gslb weight`.
    let out = run_gslb(&[
        "override",
        "-c",
        path.to_str().unwrap(),
        "--api",
        &api,
        "eu/192.0.2.10",
        "none",
    ]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    wait_for(&server, WWW, &["192.0.2.10"]);
    let out = run_gslb(&[
        "weight",
        "-c",
        path.to_str().unwrap(),
        "--api",
        &api,
        "eu",
        "50",
    ]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    // The pool's weight percent scales the weight answers pick by.
    assert!(
        poll_until(
            DEADLINE,
            || endpoint(&status(&server), "eu/192.0.2.10")["effective_weight"] == 0.5
        ),
        "{}",
        status(&server)
    );
    // A restart keeps the token.
    drop(server);
    let (again, _) = start(&dir, &config("", &["192.0.2.10"], ""));
    assert_eq!(again.token(), token);
    drop(again);

    // `state_dir` moves the file.
    let elsewhere = TempDir::new("token-state-dir");
    let state = elsewhere.path().join("gslb-state");
    let text = config(
        &format!("state_dir = \"{}\"", state.display()),
        &["192.0.2.10"],
        "",
    );
    let (server, path) = start(&elsewhere, &text);
    assert!(state.join("api-token").is_file());
    let api = server.api().to_string();
    let out = run_gslb(&["reload", "-c", path.to_str().unwrap(), "--api", &api]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    drop(server);

    // The explicit opt-out: no token, no file.
    let open = TempDir::new("token-opt-out");
    let (server, _) = start(
        &open,
        &config("api_require_token = false", &["192.0.2.10"], ""),
    );
    assert!(!open.path().join("state").exists());
    assert_eq!(
        http(server.api(), "POST", "/override", &[], body).status,
        200
    );
    assert_eq!(
        http(server.api(), "GET", "/status", &[], "").json()["auth_required"],
        false
    );
}

#[test]
fn metrics_count_queries_answers_failovers_and_reloads() {
    let dir = TempDir::new("metrics");
    let (server, path) = start(&dir, &config("", &["192.0.2.10"], ""));
    wait_for(&server, WWW, &["192.0.2.10"]);
    dig(server.addr(), &[WWW, "A", "+tcp"]);
    dig(server.addr(), &[WWW, "A", "+subnet=81.2.69.0/24"]);
    dig(server.addr(), &["nope.example.test", "A"]);
    dig(server.addr(), &["example.org", "A"]);
    post_json(&server, "/override", r#"{"pool":"eu","state":"down"}"#);
    wait_for(&server, WWW, &["198.51.100.10"]);
    std::fs::write(&path, "[server\n").unwrap();
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 422);
    std::fs::write(&path, config("", &["192.0.2.10"], "")).unwrap();
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 200);

    let accept = (
        "Accept",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    );
    let reply = http(server.api(), "GET", "/metrics", &[accept], "");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap_or("")
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        reply.headers
    );
    let text = reply.body;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    assert!(
        value(
            r#"gslb_dns_queries_total{zone="example.test.",transport="udp",type="A",rcode="NOERROR"}"#
        ) >= 2.0
    );
    assert_eq!(
        value(
            r#"gslb_dns_queries_total{zone="example.test.",transport="tcp",type="A",rcode="NOERROR"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"gslb_dns_queries_total{zone="example.test.",transport="udp",type="A",rcode="NXDOMAIN"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"gslb_dns_queries_total{zone="",transport="udp",type="A",rcode="REFUSED"}"#),
        1.0
    );
    assert!(value(r#"gslb_dns_ecs_queries_total{ecs="present"}"#) >= 1.0);
    assert!(value(r#"gslb_dns_ecs_queries_total{ecs="absent"}"#) >= 3.0);
    assert!(value(r#"gslb_service_answers_total{service="www.example.test.",pool="eu"}"#) >= 3.0);
    assert!(value(r#"gslb_service_answers_total{service="www.example.test.",pool="us"}"#) >= 1.0);
    assert!(value(r#"gslb_failover_answers_total{service="www.example.test.",pool="us"}"#) >= 1.0);
    assert!(value(r#"gslb_endpoint_answers_total{pool="eu",endpoint="eu/192.0.2.10"}"#) >= 3.0);
    assert_eq!(
        value(r#"gslb_endpoint_up{pool="eu",endpoint="eu/192.0.2.10"}"#),
        0.0
    );
    assert_eq!(
        value(r#"gslb_endpoint_override{pool="eu",endpoint="eu/192.0.2.10",state="force-down"}"#),
        1.0
    );
    assert_eq!(value(r#"gslb_config_reloads_total{result="ok"}"#), 1.0);
    assert_eq!(value(r#"gslb_config_reloads_total{result="error"}"#), 1.0);
    assert!(value("gslb_config_loaded_timestamp_seconds") > 1.0e9);
    assert!(value("gslb_config_file_mtime_seconds") > 1.0e9);
    assert_eq!(
        value(&format!(
            "gslb_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    assert!(text.ends_with("# EOF\n"));

    // The Prometheus text format 0.0.4, when asked for (and by default),
    // passes `promtool check metrics`.
    for accept in [Some("text/plain;version=0.0.4"), None] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let reply = http(server.api(), "GET", "/metrics", &headers, "");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = &reply.body;
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE gslb_dns_queries_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE gslb_build_info gauge\n"), "{text}");
        assert!(
            text.contains("gslb_config_reloads_total{result=\"ok\"} 1\n"),
            "{text}"
        );
        promtool_check(text);
    }
}

/// Runs `promtool check metrics` on `text` (skips with a printed reason
/// when promtool is not installed: Debian package `prometheus`).
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("skipped promtool check: promtool is not installed (apt-get install prometheus)");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_sighup_sent_as_soon_as_the_server_says_listening_reloads_it() {
    // The handlers are in before the "listening" lines: a SIGHUP sent the
    // moment a script (or systemd) sees them reloads the server, never ends
    // it by the signal's default action. Several rounds, as it was a race.
    for round in 0..5 {
        let dir = TempDir::new(&format!("early-hup-{round}"));
        let (server, _) = start(&dir, &config("", &["192.0.2.10"], ""));
        server.signal("HUP");
        assert!(
            poll_until(DEADLINE, || server
                .stderr()
                .contains("reloaded configuration")),
            "round {round}: {}",
            server.stderr()
        );
        wait_for(&server, WWW, &["192.0.2.10"]);
    }
}

#[test]
fn reload_command_reports_errors_and_the_server_keeps_serving() {
    let dir = TempDir::new("reload-cli");
    let (server, path) = start(&dir, &config("", &["192.0.2.10"], ""));
    let api = server.api().to_string();
    let config_arg = path.to_str().unwrap().to_string();
    std::fs::write(&path, config("", &["192.0.2.20"], "")).unwrap();
    let ok = run_gslb(&["reload", "-c", &config_arg, "--api", &api]);
    assert_eq!(ok.code(), Some(0), "{}{}", ok.stdout, ok.stderr);
    wait_for(&server, WWW, &["192.0.2.20"]);
    // An unknown pool and a syntax error: exit 1 with file:line errors.
    std::fs::write(
        &path,
        config("", &["192.0.2.30"], "")
            .replace(r#"pools = ["eu", "us"]"#, r#"pools = ["eu", "mars"]"#),
    )
    .unwrap();
    let bad = run_gslb(&["reload", "-c", &config_arg, "--api", &api]);
    assert_eq!(bad.code(), Some(1), "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("mars"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains(&format!("{config_arg}:")),
        "file:line: {}",
        bad.stderr
    );
    std::fs::write(&path, "[server]\nlisten = [\n").unwrap();
    let syntax = run_gslb(&["reload", "-c", &config_arg, "--api", &api]);
    assert_eq!(syntax.code(), Some(1));
    assert!(
        syntax.stderr.contains(&format!("{config_arg}:")),
        "{}",
        syntax.stderr
    );
    wait_for(&server, WWW, &["192.0.2.20"]);
    // Nobody listening: exit 1.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let down = run_gslb(&["reload", "--api", &closed]);
    assert_eq!(down.code(), Some(1));
    assert!(server.stderr().contains("reload failed"), "logged");
}

#[test]
fn query_log_writes_one_line_per_query_when_enabled() {
    let dir = TempDir::new("querylog");
    let (server, _) = start(
        &dir,
        &config(
            "",
            &["192.0.2.10"],
            "\n[query_log]\nenabled = true\nsample_rate = 1.0\nmax_per_second = 1000\n",
        ),
    );
    dig(server.addr(), &[WWW, "A", "+subnet=81.2.69.0/24"]);
    dig(server.addr(), &["mail.example.test", "MX"]);
    let found = poll_until(DEADLINE, || {
        let log = server.stderr();
        log.lines().any(|l| {
            l.contains("gslb::query")
                && l.contains("name=www.example.test.")
                && l.contains("ecs=81.2.69.0/24")
                && l.contains("service=www.example.test.")
                && l.contains("pool=eu")
                && l.contains("endpoints=192.0.2.10")
                && l.contains("rcode=\"NOERROR\"") | l.contains("rcode=NOERROR")
        }) && log.contains("name=mail.example.test.")
    });
    assert!(found, "no query log lines:\n{}", server.stderr());

    // Off by default, and then its thread sleeps: no timer shares the DNS
    // workers' cores (enabled, it refills its rate budget 20 times a second).
    let quiet_dir = TempDir::new("querylog-off");
    let (quiet, path) = start(&quiet_dir, &config("", &["192.0.2.10"], ""));
    dig(quiet.addr(), &[WWW, "A"]);
    let woken = quiet.wakeups_during("query-log", Duration::from_millis(1000));
    assert!(
        woken <= 2,
        "query-log thread woke {woken} times in 1 s while disabled"
    );
    assert!(
        !quiet.stderr().contains("gslb::query"),
        "{}",
        quiet.stderr()
    );
    // A reload turns it on: the sleeping thread wakes for the first entry.
    std::fs::write(
        &path,
        config(
            "",
            &["192.0.2.10"],
            "\n[query_log]\nenabled = true\nsample_rate = 1.0\nmax_per_second = 2\n",
        ),
    )
    .unwrap();
    assert_eq!(quiet.admin("POST", "/reload", &[], "").status, 200);
    for _ in 0..3 {
        dig(quiet.addr(), &["mail.example.test", "MX"]);
    }
    let logged = poll_until(DEADLINE, || {
        quiet.stderr().contains("name=mail.example.test.")
    });
    assert!(
        logged,
        "no query log lines after enabling:\n{}",
        quiet.stderr()
    );
}

#[test]
fn an_idle_server_leaves_the_fastest_updater_and_the_file_watcher_asleep() {
    // No `fastest` service and `watch` off: neither task has work, so they
    // sleep until a reload gives them some, and the runtime's threads wake
    // for the status sampler alone (every 2 s): about 5 times in 4 s here.
    // Before, the updater woke every 500 ms and the watcher every 2 s: about
    // 19 times.
    let dir = TempDir::new("idle-timers");
    let (server, path) = start(&dir, &config("", &["192.0.2.10"], ""));
    wait_for(&server, WWW, &["192.0.2.10"]);
    std::thread::sleep(Duration::from_millis(500));
    let woken = server.wakeups_during("tokio-rt-worker", Duration::from_secs(4));
    assert!(
        woken <= 10,
        "the runtime's threads woke {woken} times in 4 s on an idle server"
    );
    // A reload that turns `watch` on wakes the watcher, which then follows
    // file changes.
    std::fs::write(&path, config("watch = true", &["192.0.2.10"], "")).unwrap();
    assert_eq!(server.admin("POST", "/reload", &[], "").status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(&path, config("watch = true", &["192.0.2.40"], "")).unwrap();
    wait_for(&server, WWW, &["192.0.2.40"]);
}

#[test]
fn watch_reloads_when_a_file_changes() {
    let dir = TempDir::new("watch");
    let (server, path) = start(&dir, &config("watch = true", &["192.0.2.10"], ""));
    wait_for(&server, WWW, &["192.0.2.10"]);
    std::fs::write(&path, config("watch = true", &["192.0.2.40"], "")).unwrap();
    wait_for(&server, WWW, &["192.0.2.40"]);
    assert!(
        server.stderr().contains("trigger=\"watch\"") || server.stderr().contains("trigger=watch"),
        "{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------------
// Reloads under load
// ---------------------------------------------------------------------------

/// Queries sent by the load client.
const LOAD_QUERIES: usize = 20_000;
/// Pace of the load client.
const LOAD_INTERVAL: Duration = Duration::from_micros(500);
/// How long one query may wait for its reply (no retries).
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Reloads triggered (half good, half bad).
const LOAD_RELOADS: usize = 40;

/// One query of the load client: when sent, when answered, what came back.
struct Exchange {
    sent: Instant,
    received: Option<Instant>,
    www: bool,
    answer: Option<Vec<Ipv4Addr>>,
}

/// A good reload: when it started and ended, and the eu address it installed.
struct Swap {
    start: Instant,
    end: Instant,
    eu: Ipv4Addr,
}

fn geo_config(eu: &str) -> String {
    format!(
        r#"
[[zone]]
origin = "example.test"
file = "{zone}"

[geoip]
database = "{db}"

[pools.eu]
endpoints = [{{ address = "{eu}" }}]

[pools.us]
endpoints = [{{ address = "198.51.100.10" }}]

[services."{WWW}"]
policy = "geo"
ttl = 5

[services."{WWW}".geo]
continent = {{ EU = ["eu", "us"] }}
default = ["us"]
"#,
        zone = repo("zones/example.test.zone"),
        db = repo("geoip/demo-city.mmdb"),
    )
}

#[test]
fn reloads_under_load_lose_no_query_and_give_no_wrong_answer() {
    let dir = TempDir::new("load");
    let (server, path) = start(&dir, &geo_config("192.0.2.10"));
    let addr = server.addr();
    let good = ["192.0.2.10", "192.0.2.20"];
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || load_client(addr, &stop))
    };
    // Reloads: good configs alternate the eu address; bad ones would put a
    // third address in service if they were (partly) applied.
    let mut swaps = Vec::new();
    let (mut good_ok, mut bad_rejected) = (0, 0);
    let begin = Instant::now();
    for i in 0..LOAD_RELOADS {
        std::thread::sleep(Duration::from_millis(250));
        let (text, is_good) = match i % 4 {
            0 => (geo_config(good[1]), true),
            1 => (
                geo_config("192.0.2.66").replace("[pools.us]", "[pools.us\n"),
                false,
            ),
            2 => (geo_config(good[0]), true),
            _ => (
                geo_config("192.0.2.99").replace(r#"EU = ["eu", "us"]"#, r#"EU = ["eu", "mars"]"#),
                false,
            ),
        };
        let tmp = dir.write("next.toml", &text);
        std::fs::rename(&tmp, &path).unwrap();
        let start = Instant::now();
        let reply = server.admin("POST", "/reload", &[], "");
        let end = Instant::now();
        if is_good {
            assert_eq!(reply.status, 200, "{}", reply.body);
            good_ok += 1;
            let eu = if i % 4 == 0 { good[1] } else { good[0] };
            swaps.push(Swap {
                start,
                end,
                eu: eu.parse().unwrap(),
            });
        } else {
            assert_eq!(reply.status, 422, "{}", reply.body);
            assert!(!reply.json()["errors"].as_array().unwrap().is_empty());
            bad_rejected += 1;
        }
    }
    let reload_time = begin.elapsed();
    stop.store(true, Ordering::Relaxed);
    let exchanges = client.join().expect("load client");

    let mail: Ipv4Addr = "192.0.2.25".parse().unwrap();
    let initial: Ipv4Addr = good[0].parse().unwrap();
    let (mut lost, mut wrong) = (0usize, Vec::new());
    for ex in &exchanges {
        let Some(received) = ex.received else {
            lost += 1;
            continue;
        };
        let answer = ex.answer.clone().unwrap_or_default();
        let valid: BTreeSet<Ipv4Addr> = if ex.www {
            // In service at any moment between send and reply.
            let at_send = swaps
                .iter()
                .rfind(|s| s.end <= ex.sent)
                .map_or(initial, |s| s.eu);
            std::iter::once(at_send)
                .chain(
                    swaps
                        .iter()
                        .filter(|s| s.start <= received && s.end >= ex.sent)
                        .map(|s| s.eu),
                )
                .collect()
        } else {
            [mail].into()
        };
        if answer.len() != 1 || !valid.contains(&answer[0]) {
            wrong.push((answer, valid));
        }
    }
    println!(
        "reloads under load: {} queries sent over {:.1} s, {lost} lost, {} wrong; {} reloads in {:.1} s: {good_ok} good (200), {bad_rejected} bad (422)",
        exchanges.len(),
        exchanges.last().map_or(0.0, |e| e
            .sent
            .duration_since(exchanges[0].sent)
            .as_secs_f64()),
        wrong.len(),
        good_ok + bad_rejected,
        reload_time.as_secs_f64(),
    );
    assert!(good_ok + bad_rejected >= 20);
    assert!(
        exchanges.len() >= 2_000,
        "the client ran alongside the reloads"
    );
    assert_eq!(lost, 0, "lost queries");
    assert!(
        wrong.is_empty(),
        "wrong answers (got, valid): {:?}",
        &wrong[..wrong.len().min(5)]
    );
}

/// Sends up to [`LOAD_QUERIES`] queries, one at a time, paced, alternating
/// the geo service (with a European ECS subnet) and a static name, until
/// `stop` (then finishes the query in flight). Bounded in count and time.
fn load_client(server: SocketAddr, stop: &AtomicBool) -> Vec<Exchange> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(server).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let ecs = ecs_option(1, 24, 0, &[81, 2, 69]);
    let hard_stop = Instant::now() + Duration::from_secs(40);
    let mut out = Vec::with_capacity(LOAD_QUERIES);
    let mut next = Instant::now();
    let mut buf = [0u8; 4096];
    for i in 0..LOAD_QUERIES {
        if stop.load(Ordering::Relaxed) || Instant::now() > hard_stop {
            break;
        }
        let id = (i % 65_536) as u16;
        let www = i % 2 == 0;
        let query = if www {
            QueryBuilder::new(id, WWW, rtype::A)
                .edns(1232, 0, ecs.clone())
                .build()
        } else {
            QueryBuilder::new(id, "mail.example.test", rtype::A).build()
        };
        let sent = Instant::now();
        socket.send(&query).expect("send");
        let mut exchange = Exchange {
            sent,
            received: None,
            www,
            answer: None,
        };
        while sent.elapsed() < LOAD_TIMEOUT {
            let Ok(len) = socket.recv(&mut buf) else {
                continue;
            };
            let Some(reply) = parse_reply(&buf[..len]) else {
                continue;
            };
            if reply.id != id {
                continue; // a late reply to an earlier query
            }
            exchange.received = Some(Instant::now());
            exchange.answer = Some(
                reply
                    .answer
                    .iter()
                    .filter(|r| r.rtype == rtype::A && r.rdata.len() == 4)
                    .map(|r| Ipv4Addr::new(r.rdata[0], r.rdata[1], r.rdata[2], r.rdata[3]))
                    .collect(),
            );
            break;
        }
        out.push(exchange);
        next += LOAD_INTERVAL;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    out
}

#[test]
fn shipped_etc_layout_and_unit_are_consistent() {
    // The sample /etc/gslb validates once a database is in place.
    let dir = TempDir::new("etc");
    let etc = dir.path().join("gslb");
    std::fs::create_dir_all(etc.join("zones")).unwrap();
    std::fs::create_dir_all(etc.join("geoip")).unwrap();
    for file in ["gslb.toml", "zones/example.test.zone"] {
        std::fs::copy(repo(&format!("config/etc/gslb/{file}")), etc.join(file)).unwrap();
    }
    std::fs::copy(
        repo("geoip/demo-city.mmdb"),
        etc.join("geoip/GeoLite2-City.mmdb"),
    )
    .unwrap();
    let config = etc.join("gslb.toml");
    let out = run_gslb(&["check", "-c", config.to_str().unwrap()]);
    assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
    // The unit runs exactly that file, reloads with SIGHUP, may bind port 53.
    let unit = std::fs::read_to_string(repo("config/systemd/gslb.service")).unwrap();
    for line in [
        "ExecStart=/usr/local/bin/gslb serve -c /etc/gslb/gslb.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
}

#[test]
fn issue_21_check_and_explain_print_to_stdout_without_info_logs_or_colour() {
    let dir = TempDir::new("quiet-tools");
    let path = dir.write("gslb.toml", &config("", &["192.0.2.10"], ""));
    let path = path.to_str().unwrap();
    // Not a terminal and NO_COLOR unset: still no ANSI escapes.
    let run = |args: &[&str]| {
        let out = common::gslb_command()
            .env_remove("NO_COLOR")
            .args(args)
            .output()
            .expect("run gslb");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run(&["check", "-c", path]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(": ok (1 zone, 1 service)"), "{stdout}");
    assert!(!stderr.contains("INFO"), "{stderr}");
    let (code, stdout, stderr) = run(&[
        "explain",
        "--offline",
        "-c",
        path,
        "--client",
        "192.0.2.1",
        WWW,
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("192.0.2.10"), "{stdout}");
    assert!(!stderr.contains("INFO"), "{stderr}");
    // -v brings INFO back, still without colour.
    let (code, _, stderr) = run(&["check", "-v", "-c", path]);
    assert_eq!(code, Some(0));
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in {stderr:?}");
    // JSON logs are unchanged.
    let (_, _, stderr) = run(&["--log-format", "json", "check", "-v", "-c", path]);
    let first = stderr.lines().next().unwrap_or("");
    let line: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(line["level"], "INFO");
}

#[test]
fn issue_21_explain_asks_the_running_server_for_live_health() {
    let dir = TempDir::new("explain-live");
    let dead = r#"
[checks.closed]
kind = "tcp"
port = 1
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1

[pools.dead]
check = "closed"
endpoints = [{ address = "127.0.0.1" }]

[services."dead.example.test"]
policy = "failover"
pools = ["dead", "us"]
"#;
    // The config's own API address answers nothing: without --api, explain
    // falls back to the files and says so.
    let text = config(r#"api = "127.0.0.1:1""#, &["192.0.2.10"], dead);
    let (server, path) = start(&dir, &text);
    let path = path.to_str().unwrap();
    let api = server.api().to_string();
    wait_for(&server, "dead.example.test", &["198.51.100.10"]);
    let reply = server.admin(
        "POST",
        "/override",
        &[],
        r#"{"endpoint":"eu/192.0.2.10","state":"down"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for(&server, WWW, &["198.51.100.10"]);

    // Live: the server's override and failing probe, endpoints in pool order.
    let live = run_gslb(&[
        "explain",
        "-c",
        path,
        "--api",
        &api,
        "--client",
        "192.0.2.1",
        WWW,
    ]);
    assert_eq!(live.code(), Some(0), "{}{}", live.stdout, live.stderr);
    let out = &live.stdout;
    assert!(
        out.starts_with(&format!("source: live, the server at {api}")),
        "{out}"
    );
    assert!(
        out.contains("answer: www.example.test. 5 IN A 198.51.100.10"),
        "{out}"
    );
    let eu = out
        .find("  pool eu: 0/1 usable, needs 1: down")
        .unwrap_or_else(|| panic!("{out}"));
    let us = out
        .find("  pool us: 1/1 usable, needs 1: up")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(eu < us, "pool order: {out}");
    assert!(
        out.contains("    eu/192.0.2.10: not usable, override force-down"),
        "{out}"
    );
    let dead_live = run_gslb(&[
        "explain",
        "-c",
        path,
        "--api",
        &api,
        "--client",
        "192.0.2.1",
        "dead.example.test",
    ]);
    let out = &dead_live.stdout;
    assert!(
        out.contains("    dead/127.0.0.1: not usable, probe down since "),
        "{out}"
    );
    assert!(out.contains("; last check failed ("), "{out}");
    assert!(out.contains("refused"), "the last error in full: {out}");

    // --offline: the files, every endpoint in its initial state.
    let offline = run_gslb(&[
        "explain",
        "--offline",
        "-c",
        path,
        "--client",
        "192.0.2.1",
        WWW,
    ]);
    assert_eq!(offline.code(), Some(0), "{}", offline.stderr);
    assert!(
        offline
            .stdout
            .starts_with("source: offline, the configuration files;"),
        "{}",
        offline.stdout
    );
    assert!(
        offline
            .stdout
            .contains("answer: www.example.test. 5 IN A 192.0.2.10"),
        "{}",
        offline.stdout
    );
    // No --api and nothing at the config's address: offline, saying why.
    let fallback = run_gslb(&["explain", "-c", path, "--client", "192.0.2.1", WWW]);
    assert_eq!(fallback.code(), Some(0), "{}", fallback.stderr);
    assert!(
        fallback.stdout.starts_with(
            "source: offline, the configuration files (no server answered at 127.0.0.1:1"
        ),
        "{}",
        fallback.stdout
    );
    // An --api that does not answer is an error.
    let closed = run_gslb(&[
        "explain",
        "-c",
        path,
        "--api",
        "127.0.0.1:1",
        "--client",
        "192.0.2.1",
        WWW,
    ]);
    assert_eq!(closed.code(), Some(1), "{}", closed.stdout);
    assert!(
        closed.stderr.contains("no server answered at 127.0.0.1:1"),
        "{}",
        closed.stderr
    );
    // The API call itself, and its errors.
    let reply = http(
        server.api(),
        "GET",
        "/explain?client=192.0.2.1&name=www.example.test",
        &[],
        "",
    );
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("198.51.100.10"), "{}", reply.body);
    let bad = http(
        server.api(),
        "GET",
        "/explain?client=nope&name=www.example.test",
        &[],
        "",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn issue_21_explain_lists_pools_in_the_clients_failover_order() {
    // The shipped geo config: an Asian client walks ap, then us; eu is not
    // in its order. A European client walks eu, then us.
    let out = run_gslb(&[
        "explain",
        "--offline",
        "--client",
        "2001:218::/32",
        WWW,
        "AAAA",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let at = |needle: &str| {
        out.stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", out.stdout))
    };
    assert!(at("  pool ap: ") < at("  pool us: "), "{}", out.stdout);
    assert!(at("  pool us: ") < at("  pool eu (not in this client's order): "));
    let out = run_gslb(&["explain", "--offline", "--client", "81.2.69.160/24", WWW]);
    let at = |needle: &str| {
        out.stdout
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", out.stdout))
    };
    assert!(at("  pool eu: ") < at("  pool us: "), "{}", out.stdout);
    assert!(at("  pool us: ") < at("  pool ap (not in this client's order): "));
}
