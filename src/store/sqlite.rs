//! The durable store's file: one SQLite database in the data directory, in WAL mode with
//! `synchronous=FULL` (a commit is on disk when it returns), held with an exclusive lock for
//! the manager's life so a second manager on the same directory is refused, never interleaved.
//!
//! Two tables: `objects` (one row per shared object: name, kind, element-type tag, creation
//! arguments) and `entries` (its contents, as key-value pairs each kind defines).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::journal::{Change, Sink};
use crate::error::{Error, Result};

/// The file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "monogusa.db";

/// The schema's version, kept in SQLite's `user_version`: a file from a newer monogusa is
/// refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// One stored object and what it held.
pub(crate) struct StoredObject {
    pub(crate) object: u64,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) tag: String,
    pub(crate) args: Vec<u8>,
    pub(crate) entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The open database.
pub(crate) struct Database {
    connection: Connection,
}

fn open_error(path: &Path, e: &rusqlite::Error) -> Error {
    let why = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "{} is in use by another manager (only one manager may use a data directory)",
            path.display()
        ),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => format!(
            "{} is damaged or not a monogusa data file ({e}); move it away to start empty, \
             or restore it from a backup",
            path.display()
        ),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!("cannot open {} for writing: {e}", path.display())
        }
        _ => format!("cannot open {}: {e}", path.display()),
    };
    Error::Config(why)
}

impl Database {
    /// Opens (or creates) the data file in `dir`, taking its lock and checking it whole.
    pub(crate) fn open(dir: &Path) -> Result<(Database, PathBuf)> {
        #[cfg(unix)]
        let existed = dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Config(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE_NAME);
        // What the manager keeps is for the user who runs it, like its Unix socket.
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let fail = |e: rusqlite::Error| open_error(&path, &e);
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        // Exclusive before WAL: the lock is taken by the first transaction below and held
        // until the connection closes (and no shared-memory file is needed).
        connection
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;",
            )
            .map_err(fail)?;
        connection
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(fail)?;
        // SQLite gives its WAL file the database file's mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(fail)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Config(format!(
                "{} was written by a newer monogusa (schema {version}, this one knows {SCHEMA_VERSION})",
                path.display()
            )));
        }
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS objects (
                     object INTEGER PRIMARY KEY,
                     name TEXT NOT NULL UNIQUE,
                     kind TEXT NOT NULL,
                     tag TEXT NOT NULL,
                     args BLOB NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS entries (
                     object INTEGER NOT NULL,
                     key BLOB NOT NULL,
                     value BLOB NOT NULL,
                     PRIMARY KEY (object, key)
                 ) WITHOUT ROWID;
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(fail)?;
        let check: String = connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(fail)?;
        if check != "ok" {
            return Err(Error::Config(format!(
                "{} is damaged ({check}); move it away to start empty, or restore it from a backup",
                path.display()
            )));
        }
        Ok((Database { connection }, path))
    }

    /// Everything stored, object by object.
    pub(crate) fn load(&self, path: &Path) -> Result<Vec<StoredObject>> {
        let fail = |e: rusqlite::Error| open_error(path, &e);
        let mut objects = Vec::new();
        let mut statement = self
            .connection
            .prepare("SELECT object, name, kind, tag, args FROM objects ORDER BY object")
            .map_err(fail)?;
        let rows = statement
            .query_map([], |row| {
                Ok(StoredObject {
                    object: row.get::<_, i64>(0)? as u64,
                    name: row.get(1)?,
                    kind: row.get(2)?,
                    tag: row.get(3)?,
                    args: row.get(4)?,
                    entries: Vec::new(),
                })
            })
            .map_err(fail)?;
        for row in rows {
            objects.push(row.map_err(fail)?);
        }
        let mut entries = self
            .connection
            .prepare("SELECT key, value FROM entries WHERE object = ?1 ORDER BY key")
            .map_err(fail)?;
        for object in &mut objects {
            let rows = entries
                .query_map([object.object as i64], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(fail)?;
            for row in rows {
                object.entries.push(row.map_err(fail)?);
            }
        }
        Ok(objects)
    }
}

/// Which changes of `batch` still matter once it is written whole: of several puts and
/// deletes of one entry, only the last (a queue's counters are rewritten by every push, a
/// task's entry by its push, take and ack). Never across a `Create`, `Drop` or `Clear`, which
/// are kept, with everything before them.
fn superseded(batch: &[Change]) -> Vec<bool> {
    let mut skip = vec![false; batch.len()];
    let mut last: std::collections::HashMap<(u64, &[u8]), usize> = std::collections::HashMap::new();
    for (at, change) in batch.iter().enumerate() {
        match change {
            Change::Put { object, key, .. } | Change::Delete { object, key } => {
                if let Some(earlier) = last.insert((*object, key.as_slice()), at) {
                    skip[earlier] = true;
                }
            }
            Change::Create { .. } | Change::Drop { .. } | Change::Clear { .. } => last.clear(),
        }
    }
    skip
}

impl Sink for Database {
    fn write(&mut self, batch: &[Change]) -> std::result::Result<(), String> {
        let skip = superseded(batch);
        let write = || -> rusqlite::Result<()> {
            let tx = self.connection.transaction()?;
            for (change, _) in batch.iter().zip(&skip).filter(|(_, skip)| !**skip) {
                match change {
                    Change::Create {
                        object,
                        name,
                        kind,
                        tag,
                        args,
                    } => {
                        tx.prepare_cached(
                            "INSERT INTO objects (object, name, kind, tag, args) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![*object as i64, name, kind, tag, args])?;
                    }
                    Change::Drop { object } => {
                        tx.prepare_cached("DELETE FROM entries WHERE object = ?1")?
                            .execute([*object as i64])?;
                        tx.prepare_cached("DELETE FROM objects WHERE object = ?1")?
                            .execute([*object as i64])?;
                    }
                    Change::Put { object, key, value } => {
                        tx.prepare_cached(
                            "INSERT OR REPLACE INTO entries (object, key, value) VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![*object as i64, key, value])?;
                    }
                    Change::Delete { object, key } => {
                        tx.prepare_cached("DELETE FROM entries WHERE object = ?1 AND key = ?2")?
                            .execute(params![*object as i64, key])?;
                    }
                    Change::Clear { object } => {
                        tx.prepare_cached("DELETE FROM entries WHERE object = ?1")?
                            .execute([*object as i64])?;
                    }
                }
            }
            tx.commit()
        };
        let mut write = write;
        write().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_change_of_an_entry_is_written_and_never_across_a_barrier() {
        let put = |key: u8, value: u8| Change::put(1, [key], [value]);
        let batch = [
            put(1, 1),
            put(2, 1),
            put(1, 2),
            Change::delete(1, [2]),
            Change::Clear { object: 1 },
            put(1, 3),
            put(1, 4),
        ];
        assert_eq!(
            superseded(&batch),
            [true, true, false, false, false, true, false]
        );
    }

    #[test]
    fn a_batch_is_written_as_its_final_state() {
        let dir = tempfile::tempdir().unwrap();
        let (mut database, path) = Database::open(dir.path()).unwrap();
        database
            .write(&[
                Change::Create {
                    object: 1,
                    name: "c".into(),
                    kind: "monogusa.Counter".into(),
                    tag: String::new(),
                    args: Vec::new(),
                },
                Change::put(1, [], [1]),
                Change::put(1, [], [2]),
                Change::put(1, [9], [9]),
                Change::delete(1, [9]),
            ])
            .unwrap();
        let objects = database.load(&path).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].entries, vec![(vec![], vec![2])]);
    }
}
