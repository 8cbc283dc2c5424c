//! The forkserver's PID file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A PID file opened (while the server may still be root) but not yet written.
pub struct PendingPidFile {
    file: File,
    path: PathBuf,
}

/// A PID file we wrote; removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Refuses if the file names a running process; otherwise opens it for writing.
    pub fn open(path: &Path) -> Result<PendingPidFile, String> {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse::<i32>()
            && pid > 0
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        {
            return Err(format!(
                "{}: process {pid} is still running",
                path.display()
            ));
        }
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PendingPidFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Writes our PID into an opened PID file.
    pub fn write(mut pending: PendingPidFile) -> Result<PidFile, String> {
        writeln!(pending.file, "{}", std::process::id())
            .map_err(|e| format!("{}: {e}", pending.path.display()))?;
        Ok(PidFile(pending.path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
