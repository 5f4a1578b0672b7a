//! The security descriptor of a manager's pipe: full access for the user the manager runs
//! as (and optionally one group), nobody else; a protected DACL, so nothing is inherited.
//! Windows' default would let every user read the pipe.

use std::io;
use std::ptr::{null, null_mut};

use windows_sys::Win32::Foundation::{ERROR_INSUFFICIENT_BUFFER, GetLastError, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, LookupAccountNameW, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES,
    SID_NAME_USE, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use crate::handle::{from_wide, owned, raw, wide};

/// A security descriptor Windows allocated (freed with `LocalFree`), and the attributes
/// that point at it.
pub(crate) struct Security {
    descriptor: PSECURITY_DESCRIPTOR,
    attributes: SECURITY_ATTRIBUTES,
    /// The SDDL it was made from, for tests and error messages.
    sddl: String,
}

// SAFETY: the descriptor is immutable after creation and only read by Windows calls.
unsafe impl Send for Security {}
// SAFETY: as above; shared reads only.
unsafe impl Sync for Security {}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("sddl", &self.sddl)
            .finish()
    }
}

impl Security {
    /// Full access for the current user, and for `group` if named.
    pub(crate) fn for_current_user(group: Option<&str>) -> io::Result<Security> {
        let user = current_user_sid()?;
        let mut sddl = format!("D:P(A;;GA;;;{user})");
        if let Some(group) = group {
            let sid = if group.starts_with("S-1-") {
                group.to_string()
            } else {
                sid_of_account(group)?
            };
            sddl.push_str(&format!("(A;;GA;;;{sid})"));
        }
        Security::from_sddl(sddl)
    }

    fn from_sddl(sddl: String) -> io::Result<Security> {
        let text = wide(&sddl)?;
        let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
        // SAFETY: `text` is NUL-terminated; Windows allocates the descriptor and gives us
        // ownership (freed in `Drop`).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                null_mut(),
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("the pipe's security descriptor {sddl}: {e}"),
            ));
        }
        Ok(Security {
            descriptor,
            attributes: SECURITY_ATTRIBUTES {
                nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: descriptor,
                bInheritHandle: 0,
            },
            sddl,
        })
    }

    /// For `CreateNamedPipeW`; valid while `self` lives.
    pub(crate) fn attributes(&self) -> *const SECURITY_ATTRIBUTES {
        &self.attributes
    }

    /// The descriptor in SDDL.
    #[cfg(test)]
    pub(crate) fn sddl(&self) -> &str {
        &self.sddl
    }
}

impl Drop for Security {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW for us,
        // freed once.
        unsafe { LocalFree(self.descriptor) };
    }
}

/// The SID of the user this process runs as, as a string `S-1-…`.
pub(crate) fn current_user_sid() -> io::Result<String> {
    let mut token = null_mut();
    // SAFETY: the pseudo-handle of our own process, and a place for the token handle.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let token = owned(token)?;
    let mut len = 0u32;
    // SAFETY: asks only for the size needed (no buffer).
    unsafe { GetTokenInformation(raw(&token), TokenUser, null_mut(), 0, &mut len) };
    // u64s, so the TOKEN_USER at the start is aligned.
    let mut buffer = vec![0u64; (len as usize).div_ceil(8).max(1)];
    // SAFETY: `buffer` has room for `len` bytes.
    let ok = unsafe {
        GetTokenInformation(
            raw(&token),
            TokenUser,
            buffer.as_mut_ptr().cast(),
            len,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: Windows filled `buffer` with a TOKEN_USER (aligned: the buffer is u64s); its
    // SID points into the same buffer, alive while we use it.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    sid_string(sid)
}

/// The SID of an account or group name.
fn sid_of_account(name: &str) -> io::Result<String> {
    let wide_name = wide(name)?;
    let (mut sid_len, mut domain_len) = (0u32, 0u32);
    let mut kind: SID_NAME_USE = 0;
    // SAFETY: asks only for the sizes needed.
    unsafe {
        LookupAccountNameW(
            null(),
            wide_name.as_ptr(),
            null_mut(),
            &mut sid_len,
            null_mut(),
            &mut domain_len,
            &mut kind,
        )
    };
    // SAFETY: reads the calling thread's last error.
    if unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no account or group named {name}: {e}"),
        ));
    }
    let mut sid = vec![0u64; (sid_len as usize).div_ceil(8).max(1)];
    let mut domain = vec![0u16; domain_len.max(1) as usize];
    // SAFETY: both buffers have the sizes Windows asked for.
    let ok = unsafe {
        LookupAccountNameW(
            null(),
            wide_name.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut sid_len,
            domain.as_mut_ptr(),
            &mut domain_len,
            &mut kind,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    sid_string(sid.as_mut_ptr().cast())
}

fn sid_string(sid: PSID) -> io::Result<String> {
    let mut text = null_mut();
    // SAFETY: `sid` is a valid SID; Windows allocates the string (freed below).
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: Windows gave a NUL-terminated string, freed once right after reading it.
    let string = unsafe { from_wide(text) };
    // SAFETY: allocated for us by ConvertSidToStringSidW.
    unsafe { LocalFree(text.cast()) };
    Ok(string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the user the process runs as, with a protected DACL (nothing inherited, no
    /// Everyone, no Administrators); a group adds exactly one more entry.
    #[test]
    fn the_descriptor_admits_the_current_user_alone_or_with_one_group() {
        let user = current_user_sid().unwrap();
        assert!(user.starts_with("S-1-"), "{user}");
        let alone = Security::for_current_user(None).unwrap();
        assert_eq!(alone.sddl(), format!("D:P(A;;GA;;;{user})"));
        let with_users = Security::for_current_user(Some("S-1-5-32-545")).unwrap();
        assert_eq!(
            with_users.sddl(),
            format!("D:P(A;;GA;;;{user})(A;;GA;;;S-1-5-32-545)")
        );
    }
}
