//! A child process (the real binary) that a failing test does not leave running: killed and
//! reaped when dropped, unless the test took it out to wait for it itself.

use std::process::Child;

/// A child process killed when dropped unless it was taken out.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn new(child: Child) -> Self {
        KillOnDrop(Some(child))
    }

    /// Its pid (0 once taken out).
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    /// The child itself, no longer killed on drop (to wait for its exit and output).
    pub fn take(&mut self) -> Child {
        self.0.take().expect("the child was taken out already")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
