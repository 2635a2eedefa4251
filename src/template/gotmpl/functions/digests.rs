//! Checksums of a string, as templates print them into config to notice a
//! change: consul-template's `sha256Hex` and `md5sum`, and sprig's
//! `sha1sum`, `sha256sum` and `adler32sum`. SHA digests come from ring
//! (already here for TLS), MD5 from RustCrypto's md-5.

use md5::{Digest, Md5};
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};

use super::super::value::Value;
use super::{Param, Table};

const S: Param = Param::Str;

pub fn register(table: &mut Table) {
    table.add("sha256Hex", &[S], None, |a| {
        Ok(hex(digest(&SHA256, bytes(&a[0])).as_ref()))
    });
    table.add("md5sum", &[S], None, |a| {
        Ok(hex(&Md5::digest(bytes(&a[0]))))
    });
    table.add("sprig_sha256sum", &[S], None, |a| {
        Ok(hex(digest(&SHA256, bytes(&a[0])).as_ref()))
    });
    table.add("sprig_sha1sum", &[S], None, |a| {
        Ok(hex(digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes(&a[0])).as_ref()))
    });
    table.add("sprig_adler32sum", &[S], None, |a| {
        Ok(Value::string(adler32(bytes(&a[0])).to_string()))
    });
}

fn bytes<'v>(value: &'v Value) -> &'v [u8] {
    value.as_str().unwrap_or_default().as_bytes()
}

/// Go's `%x` of a digest: lower-case hex.
fn hex<'a>(digest: &[u8]) -> Value<'a> {
    Value::string(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// Adler-32 (RFC 1950), as Go's `hash/adler32` computes it.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % MOD;
        b = (b + a) % MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, input: &'static str) -> String {
        let mut table = Table::default();
        register(&mut table);
        let value = (table.get(name).unwrap().run)(vec![Value::str(input)]).unwrap();
        value.as_str().unwrap().to_owned()
    }

    /// The digests of well-known inputs (RFC 1321, FIPS 180, zlib's).
    #[test]
    fn digests_match_the_published_ones() {
        assert_eq!(call("md5sum", ""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(call("md5sum", "abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            call("sha256Hex", "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(call("sprig_sha256sum", "abc"), call("sha256Hex", "abc"));
        assert_eq!(
            call("sprig_sha1sum", "abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(call("sprig_adler32sum", "Wikipedia"), "300286872");
        assert_eq!(call("sprig_adler32sum", "hello"), "103547413");
        assert_eq!(call("sprig_adler32sum", ""), "1");
    }
}
