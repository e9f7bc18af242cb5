//! The table of child processes: every pid the daemon spawned and has not reaped yet, with who
//! owns it. The reaper reaps every exited child (it must, or `waitid` would report the same
//! zombie forever) and hands each exit to its owner.

use std::collections::HashMap;

use super::registry::InstanceId;

/// Who a child process belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The process of an instance.
    Instance(InstanceId),
}

/// Spawned and not yet reaped, by pid.
#[derive(Default)]
pub struct Children {
    by_pid: HashMap<u32, Owner>,
}

impl Children {
    pub fn insert(&mut self, pid: u32, owner: Owner) {
        self.by_pid.insert(pid, owner);
    }

    pub fn owner(&self, pid: u32) -> Option<Owner> {
        self.by_pid.get(&pid).copied()
    }

    /// Forgets `pid` once reaped.
    pub fn remove(&mut self, pid: u32) -> Option<Owner> {
        self.by_pid.remove(&pid)
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }
}
