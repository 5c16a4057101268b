//! `halo:plugin/calendar` (0.1.3): the current calendar event of the user whose `derive` is
//! running, title included. Set by the executor for the length of one `derive` call; every
//! other call sees none. Nothing to grant: it tells a presence plugin only about the user it is
//! already deriving.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::halo::plugin::calendar as wit;
use crate::executor::PluginState;

/// Per-instance state: the event `current` answers.
#[derive(Debug, Default)]
pub struct CalendarState {
    /// The event of the user being derived, during `derive`.
    pub current: Option<wit::Event>,
}

impl wit::Host for CalendarState {
    fn current(&mut self) -> Option<wit::Event> {
        self.current.clone()
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<PluginState, HasSelf<CalendarState>>(linker, |s| &mut s.calendar)
}
