//! Presence: availability numbers and their bands, the built-in and custom states, aggregation
//! of a user's sources (manual state, devices, calendar, phone) into one published state, and
//! access levels deciding who sees which fields.
//!
//! Modelled on Lync / Skype for Business: an availability is a number whose band is what people
//! see (Available, Busy, Do Not Disturb, ...); an activity token refines it (In a meeting,
//! In a call, Off Work).

mod access;
mod aggregate;
mod document;
pub mod engine;
mod state;

pub use access::{AccessLevel, Field, Visibility};
pub use aggregate::{
    Calendar, CalendarActivity, Inputs, Machine, MachineState, Manual, Phone, Published, Timers, aggregate,
};
pub use document::{
    Document, MAX_LOCATION_CHARS, MAX_NOTE_CHARS, MAX_PHONE_CHARS, PictureMeta, check_idle_minutes, check_text,
    sniff_image,
};
pub use state::{
    Activity, Availability, Band, BuiltinState, CustomState, PresenceError, StateChoice, check_custom_states,
};
