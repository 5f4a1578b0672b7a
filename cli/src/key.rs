//! The authkey: from a file (warned about when others can read it) or the environment, never
//! from the command line.

use std::path::Path;

use crate::Failure;
use crate::args::Key;

/// The key the flags (or the environment) name.
pub fn load(key: &Key) -> Result<Vec<u8>, Failure> {
    if key.authkey.is_some() {
        return Err(Failure::Usage(
            "the authkey is never taken from the command line (other users can read it): put it \
             in a file for --authkey-file (chmod 600), or in the MONOGUSA_AUTHKEY environment \
             variable"
                .into(),
        ));
    }
    match &key.authkey_file {
        Some(path) => from_file(path),
        None => std::env::var_os("MONOGUSA_AUTHKEY")
            .map(|k| k.into_encoded_bytes())
            .ok_or_else(|| {
                Failure::Usage("no authkey: use --authkey-file FILE or set MONOGUSA_AUTHKEY".into())
            }),
    }
}

fn from_file(path: &Path) -> Result<Vec<u8>, Failure> {
    warn_if_readable_by_others(path);
    let key = std::fs::read(path).map_err(|e| {
        Failure::Runtime(format!("cannot read the key file {}: {e}", path.display()))
    })?;
    // A trailing newline from `echo secret > key` is not part of the key.
    let end = key
        .iter()
        .rposition(|b| !b"\r\n".contains(b))
        .map_or(0, |i| i + 1);
    Ok(key[..end].to_vec())
}

/// A key file others can read is a key others can have.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                log::warn!(
                    "the key file {} can be read by other users (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
        }
    }
    // Windows keeps no mode bits; its ACLs are the user's own to check.
    #[cfg(not(unix))]
    let _ = path;
}
