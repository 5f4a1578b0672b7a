//! Each supervised process runs in a process group of its own, so that a stop or a kill
//! reaches everything it started: the shell of a compound Procfile line and the command it
//! waits on, `exec`'d programs, and children it forked. Signalling the leader alone (the
//! shell) left the rest running under PID 1, holding the output pipes open.
//!
//! Windows has no process groups: there the leader alone is signalled (killed).

use std::process::{Child, Command};

/// Puts the process `command` starts into a new group, led by itself.
pub(super) fn isolate(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(not(unix))]
    let _ = command;
}

/// The group a child leads (its pid, since [`isolate`] made it the leader).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(unix), allow(dead_code))] // signalled on Unix only
pub(super) struct ProcessGroup(u32);

impl ProcessGroup {
    pub(super) fn of(child: &Child) -> ProcessGroup {
        ProcessGroup(child.id())
    }

    /// Asks every process of the group to stop (SIGTERM).
    pub(super) fn terminate(self) {
        #[cfg(unix)]
        self.signal(rustix::process::Signal::TERM);
    }

    /// Kills every process of the group (SIGKILL).
    pub(super) fn kill(self) {
        #[cfg(unix)]
        self.signal(rustix::process::Signal::KILL);
    }

    /// Whether any process of the group is left (a zombie not yet reaped counts).
    pub(super) fn alive(self) -> bool {
        #[cfg(unix)]
        {
            rustix::process::Pid::from_raw(self.0 as i32)
                .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
        }
        #[cfg(not(unix))]
        false
    }

    #[cfg(unix)]
    fn signal(self, signal: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            // ESRCH: the group is gone already.
            let _ = rustix::process::kill_process_group(pid, signal);
        }
    }
}
