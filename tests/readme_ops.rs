//! Issue 21: the README's own commands work as written. Every `sh` block
//! of the README's "Operations" section runs, with bash (`-euo pipefail`),
//! against a real server on the shipped `config/gslb.toml`; only the
//! addresses are replaced by the test server's (`127.0.0.1:9300` by its
//! API, `-p 5300` by its DNS port). `curl -f` makes an HTTP error fail the
//! block.

mod common;

use common::{GslbServer, dig};

/// The `sh` blocks of the README section headed `## {title}`.
fn sh_blocks(readme: &str, title: &str) -> Vec<String> {
    let heading = format!("## {title}\n");
    let start = readme
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {title:?} in README.md"));
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("closed code block");
        blocks.push(body[..close].to_string());
        rest = &body[close + 3..];
    }
    blocks
}

#[test]
fn issue_21_every_command_block_of_the_operations_section_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = sh_blocks(&readme, "Operations");
    assert!(blocks.len() >= 2, "found {blocks:?}");
    for tool in ["bash", "curl", "jq"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            println!("skipped: {tool} is not installed");
            return;
        }
    }
    let server = GslbServer::start(&["-c", "config/gslb.toml", "--api", "127.0.0.1:0"]);
    assert_eq!(
        dig(
            server.addr(),
            &["www.example.test", "+subnet=81.2.69.160/24"]
        )
        .sorted_rdata(),
        ["192.0.2.10"]
    );
    let api = server.api().to_string();
    let port = server.addr().port().to_string();
    for block in &blocks {
        let script = block
            .replace("127.0.0.1:9300", &api)
            .replace("-p 5300", &format!("-p {port}"))
            .replace("cargo run --release --", env!("CARGO_BIN_EXE_gslb"));
        let out = std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run bash");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        println!("$ {script}{stdout}{stderr}");
        assert!(
            out.status.success(),
            "README block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
            out.status,
            server.stderr()
        );
    }
    // The blocks changed what they said: the override was set and cleared,
    // and the reload went through.
    let stderr = server.stderr();
    assert!(stderr.contains("override eu/192.0.2.10: drain"), "{stderr}");
    assert!(stderr.contains("override eu/192.0.2.10: none"), "{stderr}");
    assert!(stderr.contains("reloaded (api)"), "{stderr}");
}

/// Copies the repository's `dir` (its files only) into `root/dir`.
fn copy_files(root: &std::path::Path, dir: &str) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    for entry in std::fs::read_dir(&from).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, root.join(dir).join(path.file_name().expect("name")))
                .expect("copy");
        }
    }
}

/// Runs one README block with bash (`-euo pipefail`) in `dir`; panics with
/// its output when it fails.
fn run_block(script: &str, dir: &std::path::Path, server_log: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("$ {script}{stdout}{stderr}");
    assert!(
        out.status.success(),
        "README block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{server_log}",
        out.status
    );
    format!("{stdout}{stderr}")
}

#[test]
fn issue_20_the_signing_walkthrough_works_as_written() {
    // "Signing a zone" from a fresh clone: its `sh` blocks run in a copy of
    // the repository's config/, zones/ and geoip/ (the first block edits
    // config/gslb.toml), with the test's gslb binary for target/release/gslb
    // (`cargo build --release` is the Quick start's) and the test server's
    // port for 5300.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = sh_blocks(&readme, "Signing a zone");
    assert_eq!(blocks.len(), 2, "found {blocks:?}");
    let root = common::TempDir::new("readme-signing");
    for dir in ["config", "zones", "geoip"] {
        copy_files(root.path(), dir);
    }
    let gslb = env!("CARGO_BIN_EXE_gslb");
    let setup = blocks[0]
        .replace("cargo build --release\n", "")
        .replace("target/release/gslb", gslb);
    run_block(&setup, root.path(), "(not started)");
    let config = root.path().join("config/gslb.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.contains("dnssec = true\ndnssec_keys = [\"keys/Kexample.test.+013+"),
        "{text}"
    );
    let server = GslbServer::start(&[
        "-c",
        config.to_str().expect("utf-8 temp path"),
        "--api",
        "127.0.0.1:0",
    ]);
    let port = server.addr().port().to_string();
    let validate = blocks[1].replace("-p 5300", &format!("-p {port}"));
    let out = run_block(&validate, root.path(), &server.stderr());
    let asked = validate.lines().filter(|l| l.starts_with("delv ")).count();
    assert_eq!(asked, 4, "{validate}");
    assert_eq!(out.matches("; fully validated").count(), asked - 1, "{out}");
    assert_eq!(
        out.matches("; negative response, fully validated").count(),
        1,
        "{out}"
    );
}
