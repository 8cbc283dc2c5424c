//! The forkserver's PID file.

use std::path::{Path, PathBuf};

/// A PID file we wrote; removed when dropped.
pub struct PidFile(PathBuf);

impl PidFile {
    /// Refuses if the file names a running process; otherwise writes our PID.
    pub fn create(path: &Path) -> Result<PidFile, String> {
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
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
