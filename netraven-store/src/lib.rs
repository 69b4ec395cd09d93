//! NetRaven persistence and delivery backends.
