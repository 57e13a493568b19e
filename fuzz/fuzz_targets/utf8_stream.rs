//! Differential: `Utf8Validator` fed arbitrary bytes in arbitrary pieces agrees with
//! `std::str::from_utf8` on the whole input, fails on exactly the piece holding the first
//! byte that makes the input invalid (never later, never earlier), and keeps `carried`
//! as the incomplete suffix after a valid prefix.
//!
//! Input: nsizes u8, nsizes piece sizes u8 (0 = an empty piece), then the data; what the
//! sizes do not cover is fed as one last piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::utf8::Utf8Validator;

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (sizes, data) = rest.split_at(n);

    // The first byte that makes `data` invalid: the smallest i with data[..=i] no longer
    // a prefix of any valid UTF-8 (std reports an error with a known length).
    let whole = core::str::from_utf8(data);
    let bad_at = match whole {
        Ok(_) => None,
        Err(e) if e.error_len().is_none() => None, // only truncated at the end
        Err(e) => {
            let v = e.valid_up_to();
            (v..data.len()).find(|&i| {
                matches!(core::str::from_utf8(&data[v..=i]), Err(e) if e.error_len().is_some())
            })
        }
    };

    let mut pieces = Vec::new();
    let mut start = 0;
    for &s in sizes {
        let end = (start + usize::from(s)).min(data.len());
        pieces.push(start..end);
        start = end;
    }
    pieces.push(start..data.len());

    let mut v = Utf8Validator::new();
    // End of the input fed so far that is known to sit on a code point boundary.
    let mut boundary = 0;
    for range in pieces {
        let result = v.feed(&data[range.clone()]);
        match bad_at {
            Some(b) if b < range.end => {
                assert!(
                    result.is_err(),
                    "byte {b} is invalid but the piece {range:?} passed"
                );
                assert!(
                    b >= range.start,
                    "failed late: byte {b} was in an earlier piece"
                );
                return;
            }
            _ => assert!(result.is_ok(), "piece {range:?} failed on a valid prefix"),
        }
        let carried = v.carried();
        assert!(carried.len() <= 3);
        assert_eq!(v.is_boundary(), carried.is_empty());
        let fed = range.end;
        assert!(
            data[..fed].ends_with(carried),
            "carried bytes are not the input's suffix"
        );
        let complete = fed - carried.len();
        assert!(complete >= boundary);
        assert!(
            core::str::from_utf8(&data[boundary..complete]).is_ok(),
            "the part before the carried bytes is not valid UTF-8"
        );
        boundary = complete;
    }
    assert_eq!(bad_at, None);
    assert_eq!(
        v.finish().is_ok(),
        whole.is_ok(),
        "finish disagrees with std"
    );
});
