//! What a path that should name a regular file names instead.
//!
//! The files a spec refers to (templates, libraries, question lists, model weights) are
//! read whole and their digests enter stage keys, so each must be a regular file: a folder
//! cannot be read as one, and a device, FIFO or socket has no fixed content — it may never
//! end (`/dev/zero`) or never start (a FIFO nobody writes to). `validate` checks the files
//! that stage parameters name with this; the store checks every file before hashing it.

use std::fs::Metadata;

/// What `meta` describes when it is not a regular file ("a folder", "a character device",
/// …); `None` for a regular file (symbolic links are followed by `std::fs::metadata`).
pub fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_block_device() {
            return Some("a block device");
        }
        if kind.is_fifo() {
            return Some("a FIFO");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some("a special file")
}
