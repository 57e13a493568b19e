//! A small, slow, independent RFC 1951 decoder for tests: it checks zlib-rs's output
//! without trusting zlib-rs, and reports the farthest back-reference, which zlib's
//! inflate does not check against a window smaller than its own.

#![allow(clippy::cast_possible_truncation)] // Values are bounded by their bit counts.

/// Decodes a raw DEFLATE stream made of whole blocks, starting with `history` as the
/// window; after a block with BFINAL set a new stream starts at the next byte boundary
/// (RFC 7692 §7.2.3.4 lets blocks follow). Returns the output and the largest distance
/// used.
pub(super) fn inflate(data: &[u8], history: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
    let mut bits = Bits { data, pos: 0 };
    let mut out = history.to_vec();
    let mut max_dist = 0;
    while bits.pos.div_ceil(8) < data.len() {
        let last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                bits.pos = bits.pos.div_ceil(8) * 8;
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return Err("stored block length check");
                }
                for _ in 0..len {
                    out.push(u8::try_from(bits.take(8)?).map_err(|_| "byte")?);
                }
            }
            1 => {
                let mut lengths = [0u8; 288 + 30];
                lengths[..144].fill(8);
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                lengths[280..288].fill(8);
                lengths[288..].fill(5);
                let lit = Huffman::new(&lengths[..288]);
                let dist = Huffman::new(&lengths[288..]);
                codes(&mut bits, &lit, &dist, &mut out, &mut max_dist)?;
            }
            2 => {
                let nlen = bits.take(5)? as usize + 257;
                let ndist = bits.take(5)? as usize + 1;
                let ncode = bits.take(4)? as usize + 4;
                const ORDER: [usize; 19] = [
                    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                ];
                let mut cl = [0u8; 19];
                for &i in &ORDER[..ncode] {
                    cl[i] = bits.take(3)? as u8;
                }
                let clh = Huffman::new(&cl);
                let mut lengths = vec![0u8; nlen + ndist];
                let mut i = 0;
                while i < nlen + ndist {
                    let sym = clh.decode(&mut bits)?;
                    let (value, repeat) = match sym {
                        0..=15 => (sym as u8, 1),
                        16 => (
                            *lengths
                                .get(i.wrapping_sub(1))
                                .ok_or("repeat with no length")?,
                            3 + bits.take(2)? as usize,
                        ),
                        17 => (0, 3 + bits.take(3)? as usize),
                        _ => (0, 11 + bits.take(7)? as usize),
                    };
                    if i + repeat > lengths.len() {
                        return Err("too many lengths");
                    }
                    lengths[i..i + repeat].fill(value);
                    i += repeat;
                }
                let lit = Huffman::new(&lengths[..nlen]);
                let dist = Huffman::new(&lengths[nlen..]);
                codes(&mut bits, &lit, &dist, &mut out, &mut max_dist)?;
            }
            _ => return Err("block type 3"),
        }
        if last {
            // The stream ends; what follows starts a new one at the next byte.
            bits.pos = bits.pos.div_ceil(8) * 8;
        }
    }
    Ok((out.split_off(history.len()), max_dist))
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: usize) -> Result<u32, &'static str> {
        let mut v = 0;
        for i in 0..n {
            let byte = self.data.get(self.pos / 8).ok_or("out of input")?;
            v |= u32::from((byte >> (self.pos % 8)) & 1) << i;
            self.pos += 1;
        }
        Ok(v)
    }
}

/// Canonical Huffman decoding as in zlib's `puff.c`.
struct Huffman {
    count: [u16; 16],
    symbols: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Self {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut symbols: Vec<(u8, u16)> = lengths
            .iter()
            .enumerate()
            .filter(|&(_, &l)| l != 0)
            .map(|(s, &l)| (l, s as u16))
            .collect();
        symbols.sort_unstable();
        Self {
            count,
            symbols: symbols.into_iter().map(|(_, s)| s).collect(),
        }
    }

    fn decode(&self, bits: &mut Bits<'_>) -> Result<u16, &'static str> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= bits.take(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return self
                    .symbols
                    .get((index + code - first) as usize)
                    .copied()
                    .ok_or("bad code");
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err("bad code")
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn codes(
    bits: &mut Bits<'_>,
    lit: &Huffman,
    dist: &Huffman,
    out: &mut Vec<u8>,
    max_dist: &mut usize,
) -> Result<(), &'static str> {
    loop {
        let sym = usize::from(lit.decode(bits)?);
        match sym {
            0..=255 => out.push(sym as u8),
            256 => return Ok(()),
            _ => {
                let i = sym - 257;
                let len = usize::from(*LBASE.get(i).ok_or("length code")?)
                    + bits.take(usize::from(LEXT[i]))? as usize;
                let d = usize::from(dist.decode(bits)?);
                let distance = usize::from(*DBASE.get(d).ok_or("distance code")?)
                    + bits.take(usize::from(DEXT[d]))? as usize;
                if distance > out.len() {
                    return Err("distance too far back");
                }
                *max_dist = (*max_dist).max(distance);
                for _ in 0..len {
                    out.push(out[out.len() - distance]);
                }
            }
        }
    }
}
