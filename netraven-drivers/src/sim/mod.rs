//! Device simulator.
