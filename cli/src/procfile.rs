//! Procfiles (`name: command` per line, as foreman and honcho read them) and formations
//! (`resizer=4,mailer=1`).

use monogusa::workers::Program;

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

/// What runs a Procfile line. A simple command (words of plain characters, after optional
/// `NAME=value` assignments) runs as it is, with those variables set: it is then the process
/// the supervisor waits on and reports, so a worker that drains and exits 0 ends clean (as
/// Ruby's `spawn`, which foreman uses, does). Anything else (quotes, `$`, `;`, pipes, `exec`,
/// builtins) runs through `sh -c`; its process group still carries stops and kills to every
/// process the line starts.
pub fn program(command: &str) -> Program {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:=,@%+-".contains(c);
    let words: Vec<&str> = command.split_ascii_whitespace().collect();
    let is_assignment = |word: &str| {
        word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let assignments = words.iter().take_while(|w| is_assignment(w)).count();
    let simple = words.iter().all(|w| w.chars().all(plain))
        && words
            .get(assignments)
            .is_some_and(|program| !SHELL_WORDS.contains(program));
    if !simple {
        return Program::new("sh").arg("-c").arg(command);
    }
    let mut program = Program::new(words[assignments]).args(&words[assignments + 1..]);
    for word in &words[..assignments] {
        let (name, value) = word.split_once('=').expect("an assignment");
        program = program.env(name, value);
    }
    program
}

/// Shell keywords and builtins that a line may start with and only a shell can run.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "break", "case", "cd", "command", "continue", "eval", "exec", "exit",
    "export", "for", "if", "read", "readonly", "return", "set", "shift", "source", "test", "times",
    "trap", "ulimit", "umask", "unset", "until", "wait", "while", "{", "!",
];

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

    #[test]
    fn simple_lines_run_without_a_shell() {
        let debug = |line: &str| format!("{:?}", program(line));
        let direct = debug("FOO=1 BAR=x/y ./worker --fast n=2");
        assert!(direct.contains(r#"program: "./worker""#), "{direct}");
        assert!(
            direct.contains(r#""FOO""#) && direct.contains(r#""n=2""#),
            "{direct}"
        );
        for line in [
            "echo start; sleep 300",
            "exec ./worker",
            "./worker \"a b\"",
            "./worker $HOME",
            "FOO=1",
            "while true; do sleep 1; done",
            "./a | ./b",
            "cd /tmp",
        ] {
            assert!(
                debug(line).contains(r#"program: "sh""#),
                "{line}: {}",
                debug(line)
            );
        }
    }
}
