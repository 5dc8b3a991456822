//! The pseudonymisation service's key file: one OPRF key seed per version, readable by its owner
//! only, made and rotated by `pactgate keygen`. Only the service reads it; its contents are never
//! logged or sent. Invariant: a key ring holds at least one version, each version once.

use crate::pseudonym::{check_private, write_private, KeyError, PseudonymKey, PublicKey, KEY_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::path::Path;
use zeroize::Zeroizing;

/// The versions of the pseudonymisation key the service holds, oldest first. New pseudonyms use
/// the newest; older versions stay available so pseudonyms made under them can still be looked up.
pub struct KeyRing {
    keys: Vec<PseudonymKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing(versions {:?}, <redacted>)", self.versions())
    }
}

const HEADER: &str = "# pactgate pseudonymisation key (OPRF seeds, one per version). Secret: \
                      whoever holds it can reverse every pseudonym.\n";

fn format_error(path: &Path, line: usize, reason: &'static str) -> KeyError {
    KeyError::Format {
        path: path.display().to_string(),
        line,
        reason,
    }
}

impl KeyRing {
    /// A ring of the given keys (tests, the demo). Duplicate versions keep the first.
    pub fn from_keys(mut keys: Vec<PseudonymKey>) -> Option<Self> {
        keys.sort_by_key(PseudonymKey::version);
        keys.dedup_by_key(|k| k.version());
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// Loads a key file: readable by the owner only, lines "<version> <base64url seed>".
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_private(path)?;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(parse_line(path, index + 1, line)?);
        }
        let count = keys.len();
        let ring = Self::from_keys(keys).ok_or_else(|| format_error(path, 0, "holds no key"))?;
        if ring.keys.len() != count {
            return Err(format_error(path, 0, "names a version twice"));
        }
        Ok(ring)
    }

    /// Writes a new key file with version 1 (mode 0600), refusing to overwrite one.
    pub fn generate(path: &Path) -> Result<Self, KeyError> {
        let seed = PseudonymKey::random_seed()?;
        write_new(path, &render(&[(1, seed)]))?;
        Self::load(path)
    }

    /// Adds a new version (the newest plus one) to a key file, keeping the old ones, and returns
    /// the new ring. The file is replaced atomically.
    pub fn rotate(path: &Path) -> Result<Self, KeyError> {
        let text = read_private(path)?;
        let old = Self::load(path)?;
        let next = old.current().version().checked_add(1).ok_or_else(|| {
            format_error(path, 0, "has reached the highest version number (65535)")
        })?;
        let seed = PseudonymKey::random_seed()?;
        let mut out = Zeroizing::new(text.trim_end().to_owned());
        out.push('\n');
        out.push_str(&render_line(next, &seed));
        let temp = path.with_extension("rotating");
        write_new(&temp, &out)?;
        std::fs::rename(&temp, path).map_err(|source| KeyError::Write {
            path: path.display().to_string(),
            source,
        })?;
        Self::load(path)
    }

    /// The key of a version, if the ring holds it.
    pub fn get(&self, version: u16) -> Option<&PseudonymKey> {
        self.keys.iter().find(|k| k.version() == version)
    }

    /// The newest version: the one new pseudonyms use.
    pub fn current(&self) -> &PseudonymKey {
        // from_keys never builds an empty ring.
        &self.keys[self.keys.len() - 1]
    }

    pub fn versions(&self) -> Vec<u16> {
        self.keys.iter().map(PseudonymKey::version).collect()
    }

    /// The public keys to publish (in the nodes' configuration), oldest first.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(PseudonymKey::public_key).collect()
    }
}

/// The text of a key file that only its owner may read.
fn read_private(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Zeroizing::new(text))
}

fn parse_line(path: &Path, line: usize, text: &str) -> Result<PseudonymKey, KeyError> {
    let (version, seed) = text
        .split_once(char::is_whitespace)
        .ok_or_else(|| format_error(path, line, "has no seed after the version"))?;
    let version: u16 = version
        .parse()
        .map_err(|_| format_error(path, line, "the version is not a number from 1 to 65535"))?;
    if version == 0 {
        return Err(format_error(path, line, "version 0 is not allowed"));
    }
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(seed.trim())
            .map_err(|_| format_error(path, line, "the seed is not base64url"))?,
    );
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(format_error(path, line, "the seed is not 32 bytes"));
    }
    raw.copy_from_slice(&bytes);
    Ok(PseudonymKey::from_bytes(version, &raw))
}

fn render_line(version: u16, seed: &[u8; KEY_LEN]) -> String {
    format!("{version} {}\n", URL_SAFE_NO_PAD.encode(seed))
}

fn render(seeds: &[(u16, Zeroizing<[u8; KEY_LEN]>)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(HEADER.to_owned());
    for (version, seed) in seeds {
        out.push_str(&render_line(*version, seed));
    }
    out
}

fn write_new(path: &Path, text: &str) -> Result<(), KeyError> {
    write_private(path, text.as_bytes()).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.display().to_string(),
        },
        _ => KeyError::Write {
            path: path.display().to_string(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::PupilId;

    #[test]
    fn generate_rotate_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oprf.key");
        let first = KeyRing::generate(&path).unwrap();
        assert_eq!(first.versions(), vec![1]);
        assert!(matches!(
            KeyRing::generate(&path),
            Err(KeyError::Exists { .. })
        ));
        let rotated = KeyRing::rotate(&path).unwrap();
        assert_eq!(rotated.versions(), vec![1, 2]);
        assert_eq!(rotated.current().version(), 2);
        let id = PupilId::parse("111222333").unwrap();
        // Version 1 is unchanged by the rotation; version 2 gives another pseudonym.
        assert_eq!(
            rotated.get(1).unwrap().pseudonym(&id),
            first.current().pseudonym(&id)
        );
        let v2 = rotated.get(2).unwrap().pseudonym(&id);
        assert!(v2.starts_with("v2."));
        assert_ne!(&v2[3..], &first.current().pseudonym(&id)[3..]);
        assert_eq!(
            KeyRing::load(&path).unwrap().public_keys(),
            rotated.public_keys()
        );
    }

    #[test]
    fn refuses_a_readable_or_malformed_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oprf.key");
        KeyRing::generate(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyRing::load(&path),
            Err(KeyError::Permissions { .. })
        ));
        for (n, (text, words)) in [
            ("", "holds no key"),
            ("1\n", "no seed"),
            ("x AAAA\n", "version"),
            ("1 AAAA\n", "32 bytes"),
            ("1 ***\n", "base64url"),
        ]
        .into_iter()
        .enumerate()
        {
            let bad = dir.path().join(format!("bad-{n}.key"));
            write_private(&bad, text.as_bytes()).unwrap();
            let err = KeyRing::load(&bad).unwrap_err().to_string();
            assert!(err.contains(words), "{text:?}: {err}");
        }
    }
}
