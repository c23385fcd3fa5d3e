//! The wire codec against the golden vectors made with py2p 0.5.607, with
//! property tests, and with py2p itself: one test binary (one link instead
//! of four).

mod codec_props;
mod py2p_codec;
mod vectors;
mod vectors_chord;
