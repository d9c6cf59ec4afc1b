//! A watchdog child for a server that outlives every value that could stop it (one shared
//! by a whole test process, held in a static that is never dropped): when the owning
//! process exits, however it exits, the watchdog stops the server's process group and
//! removes its directory, unless the directory was marked to be kept.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The file whose presence in the directory keeps it (a test that used the server failed).
const KEEP_MARKER: &str = "KEEP";

/// Waits for end of file on stdin (the owner has exited, or released it), then SIGTERM to
/// the process group $1, SIGKILL after ten seconds, then removes $2 unless it holds KEEP.
const SCRIPT: &str = r#"
read -r _ || true
kill -TERM "-$1" 2>/dev/null
n=0
while kill -0 "-$1" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
kill -KILL "-$1" 2>/dev/null
if [ -e "$2/KEEP" ]; then
  echo "[stack] kept $2 with its logs: a test that used this server failed (remove it when done)" >&2
else
  rm -rf -- "$2"
fi
"#;

/// A running watchdog; it acts when this value's pipe closes (the owner exits or calls
/// [`release`](Self::release)).
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Watches the process group `group` (a child started in a group of its own, whose id
    /// is its pid) and the directory `dir`. The watchdog has its own group too, so a Ctrl-C
    /// that kills the owner does not kill it before it has cleaned up.
    pub fn spawn(group: u32, dir: &Path) -> std::io::Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("stack-watchdog")
            .arg(group.to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// Marks `dir` to be kept when the watchdog acts.
    pub fn keep_dir(dir: &Path) {
        let _ = std::fs::write(
            dir.join(KEEP_MARKER),
            b"a test that used this server failed\n",
        );
    }

    /// Acts now, as if the owner had exited, and waits until the watchdog has finished.
    pub fn release(mut self) -> std::io::Result<std::process::ExitStatus> {
        drop(self.pipe.take());
        self.child.wait()
    }
}
