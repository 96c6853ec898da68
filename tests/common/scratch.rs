//! Scratch directories for the files a test makes (keys, certificates,
//! rendered manifests), and openssl run in one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private directory under the system's temporary one, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty directory; `name` says what it is for.
    pub fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "user-purge-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory of map files, removed when dropped.
pub struct MapDir {
    dir: Scratch,
    files: std::cell::Cell<usize>,
}

impl MapDir {
    pub fn new() -> MapDir {
        MapDir {
            dir: Scratch::new("maps"),
            files: std::cell::Cell::new(0),
        }
    }

    /// Writes a new file with this text and returns its path.
    pub fn write(&self, text: &str) -> PathBuf {
        let n = self.files.get() + 1;
        self.files.set(n);
        let path = self.dir.join(format!("map-{n}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// As [`MapDir::write`], the path as a flag's value.
    pub fn write_arg(&self, text: &str) -> String {
        let path = self.write(text);
        path.to_str().expect("temporary paths are UTF-8").to_owned()
    }

    /// A path in the directory where no file is.
    pub fn missing(&self) -> PathBuf {
        self.dir.join("no-map-here.toml")
    }
}

/// Runs openssl with these arguments in `dir`; it must succeed.
pub fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes into `dir` a CA (`ca.pem`, `ca.key`), a server certificate it
/// signed for 127.0.0.1 and localhost (`server.pem`, `server.key`), and a
/// second, unrelated CA (`other-ca.pem`).
pub fn make_certificates(dir: &Path) {
    for ca in ["ca", "other-ca"] {
        let key = format!("{ca}.key");
        let pem = format!("{ca}.pem");
        let subject = format!("/CN=user-purge test {ca}");
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key,
                "-out", &pem, "-subj", &subject,
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ],
    );
}
