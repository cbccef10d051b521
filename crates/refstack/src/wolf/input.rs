//! Moonlight's input packets and the desktop state they drive.
//!
//! The browser sends DOM key and mouse events over moonlight-web's input data channels; the
//! streamer hands them to the Moonlight library, which sends them to Wolf as Moonlight input
//! packets (moonlight-common-c's `NV_*_PACKET`s: a header of a big-endian size — the bytes after
//! it — and a little-endian magic naming the packet, then the packet's fields). Wolf decodes them
//! and presses keys and moves the pointer on the desktop the session's input belongs to: its own
//! Wolf UI, or the shared desktop of the lobby it joined. Both ends live here so the format is
//! written once.
//!
//! A [`Desktop`] is what the pictures echo (the stamp's input-echo rows): events applied, the
//! last key pressed and the modifier keys held. Keys are held per session that pressed them,
//! because a lobby's desktop outlives each session in it: when a session leaves, Wolf releases
//! what it still held (as a destroyed virtual keyboard releases its keys), unless F21's
//! `lost-key-release` switch is on.

use helix_e2e_shared::stamp::{InputEcho, Modifiers};
use std::collections::BTreeMap;

/// moonlight-common-c `KEY_DOWN_EVENT_MAGIC`.
const KEY_DOWN: u32 = 0x03;
/// `KEY_UP_EVENT_MAGIC`.
const KEY_UP: u32 = 0x04;
/// `MOUSE_MOVE_ABS_MAGIC`.
const MOUSE_MOVE_ABS: u32 = 0x05;
/// `MOUSE_MOVE_REL_MAGIC_GEN5`.
const MOUSE_MOVE_REL: u32 = 0x07;
/// `MOUSE_BUTTON_DOWN_EVENT_MAGIC_GEN5`.
const MOUSE_BUTTON_DOWN: u32 = 0x08;
/// `MOUSE_BUTTON_UP_EVENT_MAGIC_GEN5`.
const MOUSE_BUTTON_UP: u32 = 0x09;
/// `SCROLL_MAGIC_GEN5`.
const SCROLL: u32 = 0x0A;
/// Moonlight clients set this bit on every key code; Wolf masks it off.
const KEY_CODE_FLAG: u16 = 0x8000;

/// One decoded input packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// A key (Windows virtual-key code) and the modifier byte the client sent with it.
    Key {
        down: bool,
        key: u16,
        modifiers: Modifiers,
    },
    MouseMoveRel {
        dx: i16,
        dy: i16,
    },
    MouseMoveAbs {
        x: i16,
        y: i16,
        width: i16,
        height: i16,
    },
    MouseButton {
        down: bool,
        button: u8,
    },
    Scroll {
        amount: i16,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("input packet of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("input packet says {said} bytes follow its size field, {got} do")]
    SizeMismatch { said: usize, got: usize },
    #[error("unknown input packet magic {0:#x}")]
    UnknownMagic(u32),
    #[error("input packet {magic:#x} has {got} payload bytes, needs {need}")]
    Truncated { magic: u32, got: usize, need: usize },
}

impl Packet {
    /// The packet as the Moonlight library puts it on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (magic, payload): (u32, Vec<u8>) = match *self {
            Packet::Key { down, key, modifiers } => {
                let code = (key | KEY_CODE_FLAG).to_le_bytes();
                (if down { KEY_DOWN } else { KEY_UP }, vec![0, code[0], code[1], modifiers.0, 0, 0])
            }
            Packet::MouseMoveRel { dx, dy } => (MOUSE_MOVE_REL, [dx.to_be_bytes(), dy.to_be_bytes()].concat()),
            Packet::MouseMoveAbs { x, y, width, height } => (MOUSE_MOVE_ABS, [x, y, 0, width, height].iter().flat_map(|v| v.to_be_bytes()).collect()),
            Packet::MouseButton { down, button } => (if down { MOUSE_BUTTON_DOWN } else { MOUSE_BUTTON_UP }, vec![button]),
            Packet::Scroll { amount } => (SCROLL, [amount, amount, 0].iter().flat_map(|v| v.to_be_bytes()).collect()),
        };
        let mut out = Vec::with_capacity(8 + payload.len());
        out.extend_from_slice(&((4 + payload.len()) as u32).to_be_bytes());
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Packet, InputError> {
        if bytes.len() < 8 {
            return Err(InputError::Short(bytes.len()));
        }
        let said = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if said != bytes.len() - 4 {
            return Err(InputError::SizeMismatch { said, got: bytes.len() - 4 });
        }
        let magic = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let p = &bytes[8..];
        let need = |n: usize| if p.len() < n { Err(InputError::Truncated { magic, got: p.len(), need: n }) } else { Ok(()) };
        let be = |i: usize| i16::from_be_bytes([p[i], p[i + 1]]);
        Ok(match magic {
            KEY_DOWN | KEY_UP => {
                need(4)?;
                let key = u16::from_le_bytes([p[1], p[2]]) & !KEY_CODE_FLAG;
                Packet::Key { down: magic == KEY_DOWN, key, modifiers: Modifiers(p[3] & 0x0f) }
            }
            MOUSE_MOVE_REL => {
                need(4)?;
                Packet::MouseMoveRel { dx: be(0), dy: be(2) }
            }
            MOUSE_MOVE_ABS => {
                need(10)?;
                Packet::MouseMoveAbs { x: be(0), y: be(2), width: be(6), height: be(8) }
            }
            MOUSE_BUTTON_DOWN | MOUSE_BUTTON_UP => {
                need(1)?;
                Packet::MouseButton { down: magic == MOUSE_BUTTON_DOWN, button: p[0] }
            }
            SCROLL => {
                need(2)?;
                Packet::Scroll { amount: be(0) }
            }
            other => return Err(InputError::UnknownMagic(other)),
        })
    }

    /// What the Moonlight library sends for one message on a browser input channel
    /// (moonlight-web's big-endian channel format, see the viewer's `bindInput`); `None` for a
    /// message that carries no desktop input (touch and controllers are not part of a desktop).
    pub fn from_channel(label: &str, m: &[u8]) -> Option<Packet> {
        let be = |i: usize| m.get(i..i + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
        match (label, m.first()) {
            ("keyboard", Some(&down)) if m.len() >= 4 => {
                Some(Packet::Key { down: down == 1, key: u16::from_be_bytes([m[1], m[2]]), modifiers: Modifiers(m[3] & 0x0f) })
            }
            ("mouseClicks", Some(&down)) if m.len() >= 2 => Some(Packet::MouseButton { down: down == 1, button: m[1] }),
            ("mouseAbsolute", Some(1)) => Some(Packet::MouseMoveAbs { x: be(1)?, y: be(3)?, width: be(5)?, height: be(7)? }),
            ("mouseRelative", Some(0)) => Some(Packet::MouseMoveRel { dx: be(1)?, dy: be(3)? }),
            // The browser's wheel delta points down for positive; Moonlight's scroll up.
            ("mouseRelative", Some(2)) => Some(Packet::Scroll { amount: be(3)?.saturating_neg() }),
            _ => None,
        }
    }
}

/// The input state of one desktop (a Wolf UI session's, or a lobby's shared one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desktop {
    events: u8,
    last_key: u16,
    /// Keys held down, each with the session that pressed it.
    held: BTreeMap<u16, u64>,
}

impl Desktop {
    /// Apply one packet that came from session `session`.
    pub fn apply(&mut self, session: u64, packet: &Packet) {
        self.events = self.events.wrapping_add(1);
        if let Packet::Key { down, key, .. } = *packet {
            // What a desktop does with a key is its keyboard state: the packet's modifier byte
            // is the client's view, Wolf presses and releases the keys themselves.
            if down {
                self.last_key = key;
                self.held.insert(key, session);
            } else {
                self.held.remove(&key);
            }
        }
    }

    /// Release every key `session` still holds; returns them.
    pub fn release_session(&mut self, session: u64) -> Vec<u16> {
        let keys: Vec<u16> = self.held.iter().filter(|(_, s)| **s == session).map(|(k, _)| *k).collect();
        for k in &keys {
            self.held.remove(k);
        }
        keys
    }

    /// The modifier keys held now.
    pub fn modifiers(&self) -> Modifiers {
        self.held.keys().fold(Modifiers::NONE, |m, k| m.with(Modifiers::of_key(*k)))
    }

    /// What the desktop's pictures show of its input.
    pub fn echo(&self) -> InputEcho {
        InputEcho { events: self.events, key: (self.last_key & 0xff) as u8, modifiers: self.modifiers() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_round_trips_through_moonlights_wire_format() {
        for p in [
            Packet::Key { down: true, key: 0x10, modifiers: Modifiers::SHIFT },
            Packet::Key { down: false, key: 0x87, modifiers: Modifiers::NONE },
            Packet::MouseMoveRel { dx: 5, dy: -5 },
            Packet::MouseMoveAbs { x: 160, y: 90, width: 320, height: 180 },
            Packet::MouseButton { down: true, button: 1 },
            Packet::Scroll { amount: -120 },
        ] {
            assert_eq!(Packet::decode(&p.encode()), Ok(p), "{p:?}");
        }
    }

    #[test]
    fn a_key_packet_has_moonlights_layout() {
        // NV_KEYBOARD_PACKET: size 10 (BE), magic 3 (LE), flags, keyCode 0x8010 (LE), modifiers, zero2.
        let bytes = Packet::Key { down: true, key: 0x10, modifiers: Modifiers::SHIFT }.encode();
        assert_eq!(bytes, vec![0, 0, 0, 10, 3, 0, 0, 0, 0, 0x10, 0x80, 1, 0, 0]);
        // Wolf masks the client's flag bit off the key code.
        assert_eq!(Packet::decode(&bytes).unwrap(), Packet::Key { down: true, key: 0x10, modifiers: Modifiers::SHIFT });
    }

    #[test]
    fn malformed_packets_are_named() {
        assert_eq!(Packet::decode(&[0, 0, 1]), Err(InputError::Short(3)));
        assert_eq!(Packet::decode(&[0, 0, 0, 9, 3, 0, 0, 0, 0, 0]), Err(InputError::SizeMismatch { said: 9, got: 6 }));
        assert_eq!(Packet::decode(&[0, 0, 0, 4, 0x55, 0, 0, 0]), Err(InputError::UnknownMagic(0x55)));
        assert!(matches!(Packet::decode(&[0, 0, 0, 5, 3, 0, 0, 0, 0]), Err(InputError::Truncated { .. })));
        // What the streamer used to forward raw (a channel message) is not a packet.
        assert!(Packet::decode(&[0, 0, 5, 255, 251]).is_err());
    }

    #[test]
    fn browser_channel_messages_become_packets() {
        assert_eq!(Packet::from_channel("keyboard", &[1, 0, 0x87, 0]), Some(Packet::Key { down: true, key: 0x87, modifiers: Modifiers::NONE }));
        assert_eq!(Packet::from_channel("keyboard", &[0, 0, 0x10, 1]), Some(Packet::Key { down: false, key: 0x10, modifiers: Modifiers::SHIFT }));
        assert_eq!(Packet::from_channel("mouseRelative", &[0, 0, 5, 255, 251]), Some(Packet::MouseMoveRel { dx: 5, dy: -5 }));
        assert_eq!(Packet::from_channel("mouseRelative", &[2, 0, 0, 0, 100]), Some(Packet::Scroll { amount: -100 }));
        assert_eq!(Packet::from_channel("mouseClicks", &[1, 1]), Some(Packet::MouseButton { down: true, button: 1 }));
        assert_eq!(
            Packet::from_channel("mouseAbsolute", &[1, 0, 10, 0, 20, 1, 64, 0, 180]),
            Some(Packet::MouseMoveAbs { x: 10, y: 20, width: 320, height: 180 })
        );
        assert_eq!(Packet::from_channel("touch", &[1, 2, 3]), None);
        assert_eq!(Packet::from_channel("keyboard", &[1, 0]), None);
    }

    #[test]
    fn the_desktop_echoes_keys_and_held_modifiers_and_releases_a_leaving_sessions_keys() {
        let mut d = Desktop::default();
        let key = |down, key| Packet::Key { down, key, modifiers: Modifiers::NONE };
        d.apply(1, &key(true, 0x10));
        assert_eq!(d.echo(), InputEcho { events: 1, key: 0x10, modifiers: Modifiers::SHIFT });
        d.apply(2, &key(true, 0xA2));
        d.apply(2, &key(true, 0x87));
        d.apply(2, &key(false, 0x87));
        assert_eq!(d.echo(), InputEcho { events: 4, key: 0x87, modifiers: Modifiers::SHIFT.with(Modifiers::CTRL) });
        // Session 1 leaves holding Shift: released. Session 2's Ctrl stays held.
        assert_eq!(d.release_session(1), vec![0x10]);
        assert_eq!(d.modifiers(), Modifiers::CTRL);
        d.apply(2, &Packet::MouseMoveRel { dx: 1, dy: 0 });
        assert_eq!(d.echo().events, 5);
    }
}
