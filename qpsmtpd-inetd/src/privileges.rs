//! Dropping root after the listeners are bound and before any plugin is loaded.

use nix::unistd::{Gid, Group, Uid, User, initgroups, setgid, setuid};
use std::ffi::CString;

/// Becomes `user` (with its supplementary groups), with `group` or the user's own group as
/// the primary group.
pub fn drop_to(user: Option<&str>, group: Option<&str>) -> Result<(), String> {
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        return Err("--user and --group need the server to be started as root".into());
    }
    let user = user
        .map(|name| {
            User::from_name(name)
                .map_err(|e| format!("user {name}: {e}"))?
                .ok_or_else(|| format!("no such user {name:?}"))
        })
        .transpose()?;
    let gid = match group {
        Some(name) => {
            Group::from_name(name)
                .map_err(|e| format!("group {name}: {e}"))?
                .ok_or_else(|| format!("no such group {name:?}"))?
                .gid
        }
        None => user.as_ref().map(|u| u.gid).unwrap_or_else(Gid::current),
    };
    match &user {
        Some(u) => {
            let name = CString::new(u.name.as_str()).map_err(|e| e.to_string())?;
            initgroups(&name, gid).map_err(|e| format!("initgroups: {e}"))?;
        }
        None => nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?,
    }
    setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    if let Some(u) = &user {
        setuid(u.uid).map_err(|e| format!("setuid: {e}"))?;
    }
    Ok(())
}
