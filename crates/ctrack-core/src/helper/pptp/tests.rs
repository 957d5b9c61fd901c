//! Unit tests of the PPTP message parser and state machine.
