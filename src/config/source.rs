//! Reading a config or env file with a hard cap on the bytes actually read.
//!
//! A size from `metadata()` says nothing for a FIFO or a device (it is 0), so the cap is
//! enforced on what `read` returns, and anything but a regular file is refused before a
//! byte is read. The file is opened with `O_NONBLOCK`, so opening a FIFO nobody writes to
//! returns at once instead of blocking the caller until a writer appears.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use thiserror::Error;

/// Why a file could not be read.
#[derive(Debug, Error)]
pub enum SourceError {
    /// `open`, `fstat` or `read` failed.
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    /// A directory, FIFO, socket or device: never configuration.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// More than the cap: the byte count is what was read before giving up.
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// The whole content of the regular file at `path`, refusing more than `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, SourceError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(SourceError::NotRegular(describe(kind)));
    }
    read_limited(file, cap)
}

/// Read at most `cap + 1` bytes: one more than the cap proves the file is too large.
fn read_limited(file: File, cap: u64) -> Result<Vec<u8>, SourceError> {
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(SourceError::TooLarge { limit: cap });
    }
    Ok(bytes)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_a_regular_file_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_capped(&p, 5).unwrap(), b"12345");
        assert!(matches!(
            read_capped(&p, 4),
            Err(SourceError::TooLarge { limit: 4 })
        ));
    }

    #[test]
    fn refuses_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = Instant::now();
        let e = read_capped(&p, 10).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(e.to_string(), "is a FIFO (named pipe), not a regular file");
    }

    #[test]
    fn refuses_devices_and_directories() {
        let e = read_capped(Path::new("/dev/zero"), 10).unwrap_err();
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = read_capped(Path::new("/"), 10).unwrap_err();
        assert!(matches!(e, SourceError::NotRegular("a directory")), "{e}");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let e = read_capped(Path::new("/nonexistent/x"), 10).unwrap_err();
        assert!(e.to_string().starts_with("cannot be read: "), "{e}");
    }
}
