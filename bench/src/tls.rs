//! Certificates for an agent's HTTPS listener, made the way an operator
//! makes them: `consul tls ca create`, then `consul tls cert create -server
//! -dc dc1` (the server certificate is valid for 127.0.0.1 and localhost).
//! The test bed has the same helper; the bench keeps its own so that its
//! numbers do not move when the test bed does.

use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A CA, a server certificate and its key, in a temp dir removed on drop.
pub struct TlsFiles {
    dir: TempDir,
}

impl TlsFiles {
    /// Runs `consul tls` twice in a fresh directory.
    pub fn generate() -> TlsFiles {
        let dir = tempfile::Builder::new()
            .prefix("bench-tls-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a directory for TLS files: {e}"));
        for args in [
            &["tls", "ca", "create"][..],
            &["tls", "cert", "create", "-server", "-dc", "dc1"][..],
        ] {
            run_consul(dir.path(), args);
        }
        let files = TlsFiles { dir };
        for path in [files.ca_file(), files.cert_file(), files.key_file()] {
            assert!(
                path.is_file(),
                "consul tls did not write {}",
                path.display()
            );
        }
        files
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("consul-agent-ca.pem")
    }

    /// The server certificate (PEM).
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("dc1-server-consul-0.pem")
    }

    /// The server certificate's key (PEM).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("dc1-server-consul-0-key.pem")
    }

    /// The agent configuration that serves the HTTP API over HTTPS on
    /// `port` with these files (client certificates are not asked for).
    pub fn agent_hcl(&self, port: u16) -> [String; 2] {
        [
            format!("ports {{ https = {port} }}"),
            format!(
                "tls {{ defaults {{ ca_file = {:?} cert_file = {:?} key_file = {:?} }} }}",
                self.ca_file(),
                self.cert_file(),
                self.key_file()
            ),
        ]
    }
}

fn run_consul(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("consul");
    cmd.args(args).current_dir(dir);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} exited with {}: {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
