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
