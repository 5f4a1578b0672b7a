//! Procfiles (`name: command` per line, as foreman and honcho read them) and formations
//! (`resizer=4,mailer=1`).

use crate::Failure;

/// One process type of a Procfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub command: String,
}

/// The entries of a Procfile's text: blank lines and `#` comments skipped.
pub fn parse(text: &str) -> Result<Vec<Entry>, Failure> {
    let mut entries: Vec<Entry> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Failure::Usage(format!("Procfile line {}: {why}", number + 1));
        let (name, command) = line
            .split_once(':')
            .ok_or_else(|| bad("expected `name: command`"))?;
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("a name is letters, digits, `-` and `_`"));
        }
        if command.is_empty() {
            return Err(bad("no command"));
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(bad(&format!("{name} appears twice")));
        }
        entries.push(Entry {
            name: name.to_string(),
            command: command.to_string(),
        });
    }
    if entries.is_empty() {
        return Err(Failure::Usage("the Procfile names no process".into()));
    }
    Ok(entries)
}

/// How many of each entry to run: `formation` (`name=N,...`), 1 of each by default. A name
/// the Procfile lacks is an error.
pub fn counts(entries: &[Entry], formation: Option<&str>) -> Result<Vec<(Entry, usize)>, Failure> {
    let mut counts: Vec<(Entry, usize)> = entries.iter().map(|e| (e.clone(), 1)).collect();
    let Some(formation) = formation else {
        return Ok(counts);
    };
    for part in formation
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, n) = part
            .split_once('=')
            .ok_or_else(|| Failure::Usage(format!("--formation: expected NAME=N, got {part:?}")))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| Failure::Usage(format!("--formation: {n:?} is not a number")))?;
        let slot = counts
            .iter_mut()
            .find(|(e, _)| e.name == name.trim())
            .ok_or_else(|| Failure::Usage(format!("--formation: the Procfile has no {name:?}")))?;
        slot.1 = n;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_formations() {
        let entries = parse("# workers\nresizer: ./resize --fast\n\nmailer:  ./mail\n").unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].command, "./resize --fast");
        let counts = counts(&entries, Some("resizer=4")).unwrap();
        assert_eq!((counts[0].1, counts[1].1), (4, 1));
        assert!(super::counts(&entries, Some("nobody=1")).is_err());
        assert!(super::counts(&entries, Some("resizer=x")).is_err());
        assert!(parse("no colon here").is_err());
        assert!(parse("a: x\na: y").is_err());
        assert!(parse("\n# nothing\n").is_err());
    }
}
