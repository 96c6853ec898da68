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
