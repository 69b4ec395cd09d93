//! NetRaven drivers (SSH transport, platforms, simulator).
