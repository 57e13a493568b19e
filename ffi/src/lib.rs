//! The C ABI of wsengine: a small, stable set of `extern "C"` functions over the sans-IO
//! [`wsengine::Connection`]. The header `include/wsengine.h` is generated from this
//! crate by cbindgen (`cbindgen.toml`; `check-header.sh` checks it is up to date).
//!
//! Every entry point:
//!
//! - catches panics (`catch_unwind`) and returns `WSENGINE_PANIC` instead, poisoning the
//!   handle;
//! - checks its pointers: a NULL handle or output pointer, or a NULL input pointer with
//!   a nonzero length, is `WSENGINE_INVALID_ARGUMENT`, never a crash;
//! - confines `unsafe` to turning the caller's pointers into references, each block with
//!   the contract it relies on (`// SAFETY:`); the contracts are documented on every
//!   function, and so in the header.
//!
//! The calling protocol is the core's (see `wsengine::Connection`): after every input
//! (`wsengine_recv`, or `wsengine_recv_buf` then `wsengine_commit_recv` to read into the
//! connection's own buffer; `wsengine_recv_eof`, `wsengine_handle_timeout`) or command
//! (accept, send, close), poll events until `WSENGINE_AGAIN`, write
//! `wsengine_poll_transmit` to the transport and `wsengine_advance_transmit`, then arm a
//! timer for `wsengine_next_timeout`; close the transport once
//! `wsengine_should_close_transport`.

mod handle;
mod types;

use core::ffi::c_char;
use core::mem::MaybeUninit;
use std::io::IoSlice;
use std::panic::{AssertUnwindSafe, catch_unwind};

use wsengine::{Accept, ClientRequest, MAX_TRANSMIT_SEGMENTS, Message, Reject, Role};

pub use crate::handle::wsengine_conn;
use crate::handle::{Failure, c_bytes, utf8};
pub use crate::types::*;

use crate::types::wsengine_status as S;

type Result<T> = core::result::Result<T, Failure>;

// ---- pointer plumbing: the only unsafe code of the crate ----

/// Runs `f` on the handle behind `conn`, catching panics. Failures set the handle's
/// error message. Every entry point that takes a mutable handle comes through here, so
/// it first withdraws the room `wsengine_recv_buf` offered (a later
/// `wsengine_commit_recv` is then refused instead of committing into a buffer the call
/// may have changed); only `wsengine_commit_recv` itself bypasses that, through
/// [`enter_keeping_recv_offer`].
///
/// # Safety
///
/// `conn` is NULL or a handle from `wsengine_create` that has not been destroyed and is
/// not in use by another thread during this call.
unsafe fn enter(conn: *mut wsengine_conn, f: impl FnOnce(&mut wsengine_conn) -> Result<S>) -> S {
    let body = |h: &mut wsengine_conn| {
        h.withdraw_recv_offer();
        f(h)
    };
    // SAFETY: enter_keeping_recv_offer has this function's contract, which the caller
    // upholds.
    unsafe { enter_keeping_recv_offer(conn, body) }
}

/// [`enter`] without withdrawing the room `wsengine_recv_buf` offered: for
/// `wsengine_commit_recv`, which uses it up.
///
/// # Safety
///
/// As [`enter`].
unsafe fn enter_keeping_recv_offer(
    conn: *mut wsengine_conn,
    f: impl FnOnce(&mut wsengine_conn) -> Result<S>,
) -> S {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by this function's contract `conn` is NULL (as_mut gives None) or points
        // to a live handle that nothing else uses during this call.
        let Some(h) = (unsafe { conn.as_mut() }) else {
            return S::WSENGINE_INVALID_ARGUMENT;
        };
        if h.poisoned {
            return S::WSENGINE_PANIC;
        }
        match f(h) {
            Ok(status) => status,
            Err(failure) => {
                h.set_error(&failure.message);
                failure.status
            }
        }
    }));
    result.unwrap_or_else(|_| {
        // SAFETY: as above; the closure's borrow of the handle ended when it unwound.
        if let Some(h) = unsafe { conn.as_mut() } {
            h.poisoned = true;
        }
        S::WSENGINE_PANIC
    })
}

/// Runs a getter on the handle behind `conn`: `Err(WSENGINE_INVALID_ARGUMENT)` for NULL,
/// `Err(WSENGINE_PANIC)` for a poisoned handle or a panic.
///
/// # Safety
///
/// As [`enter`], for reading.
unsafe fn peek<T>(
    conn: *const wsengine_conn,
    f: impl FnOnce(&wsengine_conn) -> T,
) -> core::result::Result<T, S> {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: by this function's contract `conn` is NULL or a live handle that no
        // other thread mutates during this call.
        match unsafe { conn.as_ref() } {
            None => Err(S::WSENGINE_INVALID_ARGUMENT),
            Some(h) if h.poisoned => Err(S::WSENGINE_PANIC),
            Some(h) => Ok(f(h)),
        }
    }))
    .unwrap_or(Err(S::WSENGINE_PANIC))
}

/// The caller's bytes: `len` bytes at `ptr`; NULL is allowed only with `len` 0.
///
/// # Safety
///
/// If `ptr` is not NULL and `len` is not 0, `ptr` points to `len` readable bytes that
/// stay valid and unmodified for `'a` (the rest of the call).
unsafe fn bytes_in<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what}: NULL with length {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!("{what}: length {len} too large")));
    }
    // SAFETY: non-NULL, u8 needs no alignment, `len` fits isize, and the caller
    // guarantees `len` readable bytes that stay valid for the call.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// The caller's array of `count` `T`s at `ptr`; NULL is allowed only with `count` 0.
///
/// # Safety
///
/// If `ptr` is not NULL and `count` is not 0, `ptr` points to `count` initialised `T`s
/// that stay valid and unmodified for `'a`.
unsafe fn array_in<'a, T>(ptr: *const T, count: usize, what: &str) -> Result<&'a [T]> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what}: NULL with count {count}")));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{what}: misaligned pointer")));
    }
    if count
        .checked_mul(size_of::<T>())
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err(Failure::invalid(format!("{what}: count {count} too large")));
    }
    // SAFETY: non-NULL, aligned, the total size fits isize, and the caller guarantees
    // `count` initialised elements that stay valid for the call.
    Ok(unsafe { core::slice::from_raw_parts(ptr, count) })
}

/// A single input struct at `ptr`, which must not be NULL.
///
/// # Safety
///
/// If `ptr` is not NULL it points to an initialised `T` that stays valid for `'a`.
unsafe fn struct_in<'a, T>(ptr: *const T, what: &str) -> Result<&'a T> {
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{what}: misaligned pointer")));
    }
    // SAFETY: aligned, and by the caller's guarantee NULL or a valid initialised T.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::invalid(format!("{what}: NULL")))
}

/// An output slot at `ptr`, which must not be NULL; written with `MaybeUninit::write`,
/// so it may be uninitialised.
///
/// # Safety
///
/// If `ptr` is not NULL it points to writable memory for one `T` that nothing else
/// accesses during the call.
unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut MaybeUninit<T>> {
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{what}: misaligned pointer")));
    }
    // SAFETY: aligned; by the caller's guarantee NULL or writable memory for one T, and
    // MaybeUninit<T> has T's layout and accepts any contents.
    unsafe { ptr.cast::<MaybeUninit<T>>().as_mut() }
        .ok_or_else(|| Failure::invalid(format!("{what}: NULL")))
}

/// A C string with static lifetime.
fn static_cstr(s: &'static core::ffi::CStr) -> *const c_char {
    s.as_ptr()
}

fn status_of(value: core::result::Result<i32, S>) -> i32 {
    value.unwrap_or_else(|s| s as i32)
}

fn bytes_out(bytes: &[u8]) -> wsengine_bytes {
    let (data, len) = c_bytes(bytes);
    wsengine_bytes { data, len }
}

// ---- library information ----

/// The ABI version this library implements (WSENGINE_ABI_VERSION of its header).
#[unsafe(no_mangle)]
pub extern "C" fn wsengine_abi_version() -> u32 {
    WSENGINE_ABI_VERSION
}

/// The library version, e.g. "0.1.0": a static NUL-terminated string (never free it).
#[unsafe(no_mangle)]
pub extern "C" fn wsengine_version() -> *const c_char {
    const VERSION: &core::ffi::CStr = match core::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    static_cstr(VERSION)
}

/// The name of a wsengine_status value, e.g. "WSENGINE_BLOCKED" ("WSENGINE_UNKNOWN" for
/// other values): a static NUL-terminated string (never free it).
#[unsafe(no_mangle)]
pub extern "C" fn wsengine_status_name(status: i32) -> *const c_char {
    let names: [(S, &'static core::ffi::CStr); 14] = [
        (S::WSENGINE_OK, c"WSENGINE_OK"),
        (S::WSENGINE_AGAIN, c"WSENGINE_AGAIN"),
        (S::WSENGINE_NOT_FOUND, c"WSENGINE_NOT_FOUND"),
        (S::WSENGINE_INVALID_ARGUMENT, c"WSENGINE_INVALID_ARGUMENT"),
        (S::WSENGINE_BLOCKED, c"WSENGINE_BLOCKED"),
        (S::WSENGINE_NOT_OPEN, c"WSENGINE_NOT_OPEN"),
        (S::WSENGINE_CLOSING, c"WSENGINE_CLOSING"),
        (S::WSENGINE_CLOSED, c"WSENGINE_CLOSED"),
        (S::WSENGINE_INVALID_STATE, c"WSENGINE_INVALID_STATE"),
        (S::WSENGINE_PROTOCOL_ERROR, c"WSENGINE_PROTOCOL_ERROR"),
        (S::WSENGINE_HANDSHAKE_FAILED, c"WSENGINE_HANDSHAKE_FAILED"),
        (S::WSENGINE_TIMEOUT, c"WSENGINE_TIMEOUT"),
        (S::WSENGINE_INTERNAL_ERROR, c"WSENGINE_INTERNAL_ERROR"),
        (S::WSENGINE_PANIC, c"WSENGINE_PANIC"),
    ];
    let name = names
        .iter()
        .find(|(s, _)| *s as i32 == status)
        .map_or(c"WSENGINE_UNKNOWN", |(_, n)| n);
    static_cstr(name)
}

// ---- creation and destruction ----

/// Writes the default configuration to `*config` (struct_size included): a whole
/// wsengine_config of this library's size. wsengine_config_init() does the same but
/// writes no more than the caller's struct holds: prefer it.
///
/// # Safety
///
/// `config` is NULL (WSENGINE_INVALID_ARGUMENT) or points to writable memory for one
/// wsengine_config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_config_default(config: *mut wsengine_config) -> wsengine_status {
    catch_unwind(|| {
        // SAFETY: the caller guarantees NULL or writable memory for one wsengine_config.
        match unsafe { out(config, "config") } {
            Ok(slot) => {
                slot.write(handle::default_config());
                S::WSENGINE_OK
            }
            Err(f) => f.status,
        }
    })
    .unwrap_or(S::WSENGINE_PANIC)
}

/// Writes the default configuration into the first `size` bytes of `*config`, and sets
/// struct_size to the number of bytes written: the smaller of `size` and this library's
/// sizeof(wsengine_config). Call it as `wsengine_config_init(&cfg, sizeof cfg)`, so that
/// a program built against an older header, whose wsengine_config is smaller,
/// keeps working with a newer library: the fields appended since are not written past
/// the end of its struct (wsengine_create() then uses their defaults). Prefer it to
/// wsengine_config_default(), which writes a whole struct of this library's size.
///
/// Returns WSENGINE_INVALID_ARGUMENT, writing nothing, for a NULL or misaligned `config`
/// or a `size` smaller than the first version's struct (ABI 1's wsengine_config, which
/// ends with rng_seed: offsetof(wsengine_config, deflate)).
///
/// # Safety
///
/// `config` is NULL or points to at least `size` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_config_init(
    config: *mut wsengine_config,
    size: usize,
) -> wsengine_status {
    catch_unwind(|| {
        if config.is_null() || !config.is_aligned() || size < CONFIG_SIZE_V1 {
            return S::WSENGINE_INVALID_ARGUMENT;
        }
        let len = size.min(size_of::<wsengine_config>());
        let defaults = wsengine_config {
            struct_size: len,
            ..handle::default_config()
        };
        // SAFETY: `defaults` is a whole wsengine_config (at least `len` bytes); the
        // caller guarantees `size` >= `len` writable bytes at `config`, which cannot
        // overlap a local.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&raw const defaults).cast::<u8>(),
                config.cast::<u8>(),
                len,
            );
        }
        S::WSENGINE_OK
    })
    .unwrap_or(S::WSENGINE_PANIC)
}

/// sizeof(wsengine_config) in ABI 1 (before `deflate` was appended): the smallest
/// struct wsengine_config_init() fills and wsengine_create() accepts.
const CONFIG_SIZE_V1: usize = core::mem::offset_of!(wsengine_config, deflate);

/// sizeof(wsengine_config) in ABI 2 (ending with `deflate`, before flush_timeout_ns and
/// the other fields of ABI 3 were appended).
const CONFIG_SIZE_V2: usize = core::mem::offset_of!(wsengine_config, flush_timeout_ns);

// ABI 2's struct ended with `deflate`, padded to the struct's alignment (that of its
// widest field, which ABI 3 did not change): the first field appended in ABI 3 starts
// exactly where that struct ended, so its offset is ABI 2's sizeof.
const _: () = assert!(
    CONFIG_SIZE_V2
        == (core::mem::offset_of!(wsengine_config, deflate) + size_of::<wsengine_deflate_config>())
            .next_multiple_of(align_of::<wsengine_config>())
);

/// Creates a connection and stores its handle in `*out` (NULL on failure).
///
/// - `role`: WSENGINE_ROLE_SERVER (waits for the client's opening request) or
///   WSENGINE_ROLE_CLIENT (the opening request is queued for transmission at once).
/// - `config`: NULL for the defaults, or a struct filled by wsengine_config_init() (or
///   wsengine_config_default()) and then changed; its struct_size must be
///   sizeof(wsengine_config) of this header or of an earlier one (ABI 1's, which has no
///   `deflate`, or ABI 2's, which ends with `deflate`: the fields a smaller struct lacks
///   take their defaults). Copied, with the strings of its allowed_origins list: the
///   caller may free them afterwards.
/// - `request`: the client's handshake (required for a client, NULL for a server);
///   copied as well.
/// - `now_ns`: the current time in nanoseconds on the caller's monotonic clock. Its
///   origin is arbitrary (CLOCK_MONOTONIC is a good choice), but every time passed to
///   this handle (wsengine_handle_timeout) must come from the same clock, and it must
///   never go backwards. wsengine_next_timeout() answers on that clock too.
///
/// Returns WSENGINE_INVALID_ARGUMENT for a bad role, config (an allowed_origins entry
/// that is not an origin, ...) or request (a bad URL, a subprotocol that is not a token,
/// a header that would corrupt the request),
/// WSENGINE_INTERNAL_ERROR when the operating system has no entropy for a client.
/// Free the handle with wsengine_destroy(). A handle may move between threads but must
/// not be used by two threads at once.
///
/// # Safety
///
/// `out` is NULL (WSENGINE_INVALID_ARGUMENT) or writable memory for one pointer.
/// `config` and `request` are NULL or point to initialised structs, and every pointer in
/// them satisfies the rules of wsengine_bytes and wsengine_header (config->allowed_origins:
/// NULL, or allowed_origin_count wsengine_bytes).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_create(
    role: i32,
    config: *const wsengine_config,
    request: *const wsengine_client_request,
    now_ns: u64,
    out: *mut *mut wsengine_conn,
) -> wsengine_status {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut wsengine_conn> {
        let role = role_in(role)?;
        // SAFETY: the caller guarantees NULL or an initialised wsengine_config.
        let config = unsafe { config_in(config) }?;
        let request = if request.is_null() {
            None
        } else {
            // SAFETY: the caller guarantees NULL (handled above) or an initialised struct.
            let r = unsafe { struct_in(request, "request") }?;
            // SAFETY: the caller guarantees the pointers in `request` follow the rules.
            Some(unsafe { client_request(r) }?)
        };
        let handle = wsengine_conn::new(role, config, request, now_ns)?;
        Ok(Box::into_raw(Box::new(handle)))
    }));
    // SAFETY: the caller guarantees NULL or writable memory for one pointer.
    unsafe { hand_out(result, out) }
}

/// Creates a connection whose opening handshake was done by the caller (an HTTP server
/// that parsed the upgrade request and sent the 101 itself), and stores its handle in
/// `*out` (NULL on failure). It starts in WSENGINE_STATE_OPEN: pass it the bytes that
/// follow the handshake; it reads and writes frames only, and reports no REQUEST or
/// ACCEPTED event.
///
/// - `role`, `config`, `now_ns`: as for wsengine_create() (a client masks its frames, so
///   it needs the operating system's entropy or config->rng_seed).
/// - `deflate`: NULL when the handshake did not negotiate permessage-deflate, or the
///   parameters it agreed (RFC 7692 section 7.1): the connection then compresses and
///   decompresses messages with them, compressing by config->deflate's level,
///   min_compress_size and retain_memory (config->deflate.enabled does not matter here).
///   Copied.
///
/// Returns WSENGINE_INVALID_ARGUMENT for a bad role, config or deflate (window bits
/// other than 0 or 8 to 15), WSENGINE_INTERNAL_ERROR when the operating system has no
/// entropy for a client. config->allowed_origins is checked but has no use here (there
/// is no handshake). Free the handle with wsengine_destroy().
///
/// # Safety
///
/// `out` is NULL (WSENGINE_INVALID_ARGUMENT) or writable memory for one pointer.
/// `config` and `deflate` are NULL or point to initialised structs, and
/// config->allowed_origins follows the rules given for wsengine_create().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_create_open(
    role: i32,
    config: *const wsengine_config,
    deflate: *const wsengine_deflate_params,
    now_ns: u64,
    out: *mut *mut wsengine_conn,
) -> wsengine_status {
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<*mut wsengine_conn> {
        let role = role_in(role)?;
        // SAFETY: the caller guarantees NULL or an initialised wsengine_config.
        let c_config = unsafe { config_struct_in(config) }?;
        // SAFETY: the caller guarantees the pointers in `config` follow the rules.
        let core_config = unsafe { core_config(&c_config) }?;
        let deflate = if deflate.is_null() {
            None
        } else {
            // SAFETY: the caller guarantees NULL (handled above) or an initialised struct.
            let params = handle::build_deflate_params(unsafe { struct_in(deflate, "deflate") }?)?;
            // The compression policy: config->deflate's and the deflate_* limits, whether
            // or not it is enabled (the defaults when the caller's struct is older).
            let policy = handle::build_deflate_config(&c_config)?;
            Some((params, policy))
        };
        let handle = wsengine_conn::open(role, core_config, deflate, now_ns)?;
        Ok(Box::into_raw(Box::new(handle)))
    }));
    // SAFETY: the caller guarantees NULL or writable memory for one pointer.
    unsafe { hand_out(result, out) }
}

/// A role argument from C.
fn role_in(role: i32) -> Result<Role> {
    match role {
        r if r == wsengine_role::WSENGINE_ROLE_SERVER as i32 => Ok(Role::Server),
        r if r == wsengine_role::WSENGINE_ROLE_CLIENT as i32 => Ok(Role::Client),
        r => Err(Failure::invalid(format!("role: unknown role {r}"))),
    }
}

/// The core's configuration from the caller's `config` (NULL: the defaults), checked.
///
/// # Safety
///
/// As [`config_struct_in`], and the pointers in `*config` as [`core_config`].
unsafe fn config_in(config: *const wsengine_config) -> Result<wsengine::Config> {
    // SAFETY: by this function's contract.
    let c = unsafe { config_struct_in(config) }?;
    // SAFETY: by this function's contract.
    unsafe { core_config(&c) }
}

/// The core's configuration from a merged C struct, checked, its Origin allow-list
/// copied.
///
/// # Safety
///
/// `c.allowed_origins` is NULL or points to `c.allowed_origin_count` initialised
/// wsengine_bytes, each following the wsengine_bytes rules.
unsafe fn core_config(c: &wsengine_config) -> Result<wsengine::Config> {
    let mut config = handle::build_config(c)?;
    if !c.allowed_origins.is_null() {
        // SAFETY: by this function's contract, for the array.
        let entries = unsafe {
            array_in(
                c.allowed_origins,
                c.allowed_origin_count,
                "config.allowed_origins",
            )
        }?;
        let mut list = Vec::with_capacity(entries.len());
        for e in entries {
            // SAFETY: by this function's contract, each entry follows the rules.
            let entry = unsafe { bytes_in(e.data, e.len, "config.allowed_origins[]") }?;
            list.push(utf8(entry, "config.allowed_origins[]")?);
        }
        let allowed = wsengine::handshake::AllowedOrigins::new(list)
            .map_err(|e| Failure::invalid(format!("config.allowed_origins: {e}")))?;
        config.allowed_origins = Some(allowed);
    }
    Ok(config)
}

/// The caller's `config` (NULL: the defaults) as this library's wsengine_config: a
/// struct of an earlier ABI (struct_size `CONFIG_SIZE_V1` or `CONFIG_SIZE_V2`) gets the
/// defaults of the fields appended since; a larger one (a newer header) is read up to
/// our size.
///
/// # Safety
///
/// `config` is NULL or points to an initialised wsengine_config of at least
/// `config->struct_size` bytes.
unsafe fn config_struct_in(config: *const wsengine_config) -> Result<wsengine_config> {
    let mut merged = handle::default_config();
    if config.is_null() {
        return Ok(merged);
    }
    if !config.is_aligned() {
        return Err(Failure::invalid("config: misaligned pointer"));
    }
    // SAFETY: the caller guarantees an aligned, initialised wsengine_config; only its
    // first field is read until that field says how much of the struct is there.
    let size = unsafe { config.cast::<usize>().read() };
    if size != CONFIG_SIZE_V1 && size != CONFIG_SIZE_V2 && size < size_of::<wsengine_config>() {
        return Err(Failure::invalid(format!(
            "config.struct_size is {size}, expected {}, {} or at least {}: \
             fill the struct with wsengine_config_init(&cfg, sizeof cfg)",
            CONFIG_SIZE_V1,
            CONFIG_SIZE_V2,
            size_of::<wsengine_config>()
        )));
    }
    let len = size.min(size_of::<wsengine_config>());
    // SAFETY: the caller guarantees `size` >= `len` initialised bytes at `config`;
    // `merged` is a local wsengine_config (plain integers: any bytes are valid), so the
    // two do not overlap.
    unsafe {
        core::ptr::copy_nonoverlapping(config.cast::<u8>(), (&raw mut merged).cast::<u8>(), len);
    }
    Ok(merged)
}

/// Stores a new handle (or NULL after a failure) in `*out` and returns the status; a
/// handle that cannot be stored is freed.
///
/// # Safety
///
/// `out` is NULL or writable memory for one pointer.
unsafe fn hand_out(
    result: std::thread::Result<Result<*mut wsengine_conn>>,
    out: *mut *mut wsengine_conn,
) -> wsengine_status {
    let result = result.unwrap_or_else(|_| Err(Failure::new(S::WSENGINE_PANIC, "panic")));
    // SAFETY: by this function's contract.
    let slot = match unsafe { self::out(out, "out") } {
        Ok(slot) => slot,
        Err(f) => {
            if let Ok(p) = result {
                // SAFETY: `p` came from Box::into_raw in the caller and was never shared.
                drop(unsafe { Box::from_raw(p) });
            }
            return f.status;
        }
    };
    match result {
        Ok(p) => {
            slot.write(p);
            S::WSENGINE_OK
        }
        Err(f) => {
            slot.write(core::ptr::null_mut());
            f.status
        }
    }
}

/// Builds the core's client request from the C struct.
///
/// # Safety
///
/// Every pointer in `r` follows the rules of wsengine_bytes and wsengine_header (NULL
/// only with length or count 0, else that many readable, initialised elements).
unsafe fn client_request(r: &wsengine_client_request) -> Result<ClientRequest> {
    // SAFETY: by this function's contract, for the URL.
    let url = unsafe { bytes_in(r.url, r.url_len, "request.url") }?;
    let mut req = ClientRequest::new(utf8(url, "request.url")?)?;
    if !r.origin.is_null() {
        // SAFETY: by this function's contract, for the origin.
        let origin = unsafe { bytes_in(r.origin, r.origin_len, "request.origin") }?;
        req = req.origin(utf8(origin, "request.origin")?);
    }
    // SAFETY: by this function's contract, for the array of protocols.
    let protocols = unsafe { array_in(r.protocols, r.protocol_count, "request.protocols") }?;
    for p in protocols {
        // SAFETY: by this function's contract, each element follows the wsengine_bytes rules.
        let p = unsafe { bytes_in(p.data, p.len, "request.protocols[]") }?;
        req = req.protocol(utf8(p, "request.protocols[]")?);
    }
    // SAFETY: by this function's contract, for the array of headers.
    let headers = unsafe { array_in(r.headers, r.header_count, "request.headers") }?;
    for h in headers {
        // SAFETY: by this function's contract, each header follows the wsengine_header rules.
        let (name, value) = unsafe { header_in(h, "request.headers[]") }?;
        req = req.header(name, value);
    }
    Ok(req)
}

/// A header from C: a UTF-8 name and a raw value, copied.
///
/// # Safety
///
/// `h` follows the wsengine_header rules (each pointer NULL only with length 0, else
/// pointing to that many readable bytes).
unsafe fn header_in(h: &wsengine_header, what: &str) -> Result<(String, Vec<u8>)> {
    // SAFETY: by this function's contract, for the name.
    let name = unsafe { bytes_in(h.name, h.name_len, what) }?;
    // SAFETY: by this function's contract, for the value.
    let value = unsafe { bytes_in(h.value, h.value_len, what) }?;
    Ok((utf8(name, what)?.to_owned(), value.to_vec()))
}

/// Frees a handle and everything it holds; every pointer obtained from it becomes
/// invalid. NULL is ignored.
///
/// # Safety
///
/// `conn` is NULL or a handle from wsengine_create() that has not been destroyed yet and
/// is not in use by another thread. It must not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_destroy(conn: *mut wsengine_conn) {
    if conn.is_null() {
        return;
    }
    // A panic while dropping (none is known) leaks what was left instead of unwinding
    // into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller guarantees a live handle from wsengine_create (which made it
        // with Box::into_raw) that nothing else uses, and gives it up here.
        drop(unsafe { Box::from_raw(conn) });
    }));
}

// ---- input from the transport and the clock ----

/// Offers `len` bytes received from the peer. The connection takes at most
/// wsengine_recv_capacity() of them (memory stays bounded) and stores how many in
/// `*taken` (if `taken` is not NULL). Returns WSENGINE_OK when it took all of them,
/// WSENGINE_AGAIN when it took fewer: poll events (which drains the receive buffer),
/// then offer the rest again. The bytes are copied. After the connection is over, bytes
/// are discarded and count as taken.
///
/// # Safety
///
/// `conn` is a live handle (see wsengine_destroy) or NULL. `data` points to `len`
/// readable bytes (it may be NULL only when `len` is 0). `taken` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_recv(
    conn: *mut wsengine_conn,
    data: *const u8,
    len: usize,
    taken: *mut usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        let slot = if taken.is_null() {
            None
        } else {
            // SAFETY: the caller guarantees `taken` is NULL (handled) or writable.
            Some(unsafe { out(taken, "taken") }?)
        };
        let n = h.conn.recv(data);
        if let Some(slot) = slot {
            slot.write(n);
        }
        Ok(if n == data.len() {
            S::WSENGINE_OK
        } else {
            S::WSENGINE_AGAIN
        })
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Room in the connection's own receive buffer for the transport's next read, the
/// zero-copy alternative to wsengine_recv(): stores its address in `*buf` and its length
/// in `*len`. Read from the socket straight into it (at most `*len` bytes), then call
/// wsengine_commit_recv() with the number of bytes read (0 for none, e.g. EAGAIN), with
/// no other call on this handle in between (the read-only getters, such as
/// wsengine_get_state() or wsengine_recv_capacity(), change nothing and are allowed).
///
/// Returns WSENGINE_OK with `*len` > 0, or WSENGINE_AGAIN with `*len` 0 when the
/// receive buffer is full, as wsengine_recv() returns WSENGINE_AGAIN when it took fewer
/// bytes: do not read (a read of 0 bytes would look like the end of the stream), poll
/// events (which drains the buffer), then ask again. The room is initialised memory of
/// unspecified contents, sized by the connection: a few KiB at first, growing while
/// reads fill it up to the receive limit, or the rest of a large frame's payload when
/// that is read straight into its message. After the connection is over the room is
/// still offered and what is committed is discarded, as wsengine_recv() does.
///
/// `*buf` is never NULL (with `*len` 0 it points to no bytes). It is valid until
/// wsengine_commit_recv() or any other call on this handle but a read-only getter: such
/// a call withdraws the offer, and wsengine_commit_recv() then returns
/// WSENGINE_INVALID_ARGUMENT. Calling wsengine_recv_buf() again replaces the offer.
///
/// # Safety
///
/// `conn` is NULL or a live handle (see wsengine_destroy); `buf` and `len` are NULL
/// (WSENGINE_INVALID_ARGUMENT) or writable. The caller writes at most `*len` bytes at
/// `*buf`, and none once the offer is withdrawn.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_recv_buf(
    conn: *mut wsengine_conn,
    buf: *mut *mut u8,
    len: *mut usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `buf` is NULL or writable.
        let buf_slot = unsafe { out(buf, "buf") }?;
        // SAFETY: the caller guarantees `len` is NULL or writable.
        let len_slot = unsafe { out(len, "len") }?;
        let room = h.recv_buf();
        let n = room.len();
        // An empty room points to EMPTY, like every empty byte string of this ABI: never
        // NULL, and never written through (the caller may write no byte of it).
        let ptr = if n == 0 {
            handle::EMPTY.as_ptr().cast_mut()
        } else {
            room.as_mut_ptr()
        };
        buf_slot.write(ptr);
        len_slot.write(n);
        Ok(if n == 0 {
            S::WSENGINE_AGAIN
        } else {
            S::WSENGINE_OK
        })
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Adds the first `n` bytes of the room wsengine_recv_buf() offered (what the transport
/// read into it) to the received bytes; 0 is allowed (nothing was read). Events come
/// from wsengine_poll_event(), as after wsengine_recv(). The offer is used up: call
/// wsengine_recv_buf() again before the next read.
///
/// Returns WSENGINE_INVALID_ARGUMENT, adding nothing, when `n` is larger than the room
/// offered, or when wsengine_recv_buf() was not the previous call on this handle
/// (read-only getters aside): the offer is withdrawn then too, and the connection is
/// unchanged.
///
/// # Safety
///
/// `conn` is NULL or a live handle (see wsengine_destroy).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_commit_recv(
    conn: *mut wsengine_conn,
    n: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        h.commit_recv(n)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter_keeping_recv_offer(conn, body) }
}

/// The peer ended the stream (a read returned 0). Events that follow report how the
/// connection ended.
///
/// # Safety
///
/// `conn` is NULL or a live handle (see wsengine_destroy).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_recv_eof(conn: *mut wsengine_conn) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        h.conn.recv_eof();
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Runs the timers due at `now_ns` (handshake, close, flush and message timeouts,
/// keepalive, the inflation rate limit), on the
/// clock given to wsengine_create(). Spurious calls are harmless; a time earlier than
/// an earlier call's is treated as that earlier time.
///
/// # Safety
///
/// `conn` is NULL or a live handle (see wsengine_destroy).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_handle_timeout(
    conn: *mut wsengine_conn,
    now_ns: u64,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        let now = h.instant(now_ns);
        h.conn.handle_timeout(now);
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// When wsengine_handle_timeout() should next be called: stores the deadline in
/// nanoseconds on the caller's clock in `*deadline_ns` and returns WSENGINE_OK, or
/// stores UINT64_MAX and returns WSENGINE_AGAIN when no timer is armed. The deadline
/// may be in the past: then call wsengine_handle_timeout() at once. Ask again after
/// every call that changes the connection.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `deadline_ns` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_next_timeout(
    conn: *mut wsengine_conn,
    deadline_ns: *mut u64,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `deadline_ns` is NULL or writable.
        let slot = unsafe { out(deadline_ns, "deadline_ns") }?;
        Ok(match h.conn.poll_timeout() {
            Some(t) => {
                slot.write(h.nanos(t));
                S::WSENGINE_OK
            }
            None => {
                slot.write(u64::MAX);
                S::WSENGINE_AGAIN
            }
        })
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

// ---- events ----

/// The next event: returns WSENGINE_OK and fills `*event`, WSENGINE_AGAIN when there is
/// none until new input (`event->kind` is then WSENGINE_EVENT_NONE), or a fatal status
/// (WSENGINE_PROTOCOL_ERROR, WSENGINE_HANDSHAKE_FAILED, WSENGINE_TIMEOUT) that every
/// later call repeats: stop reading, transmit what is queued (the Close frame or HTTP
/// error response), then close the transport once wsengine_should_close_transport().
/// wsengine_last_close_code() gives the close code of a fatal error.
///
/// The pointers in `*event` (and those from the wsengine_request_* and
/// wsengine_response_header functions) stay valid until the next wsengine_poll_event()
/// or wsengine_destroy() on this handle; any other call leaves them valid. A
/// WSENGINE_EVENT_REQUEST is the exception: it stays current (and readable) until it is
/// answered with wsengine_accept() or wsengine_reject(); polling before that returns
/// WSENGINE_AGAIN.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `event` is NULL or writable memory for one
/// wsengine_event (it need not be initialised).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_poll_event(
    conn: *mut wsengine_conn,
    event: *mut wsengine_event,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `event` is NULL or writable.
        let slot = unsafe { out(event, "event") }?;
        match h.poll_event() {
            Ok((status, view)) => {
                slot.write(view);
                Ok(status)
            }
            Err(failure) => {
                slot.write(handle::empty_event());
                Err(failure)
            }
        }
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// The path (request-target, query included) of the current WSENGINE_EVENT_REQUEST.
/// WSENGINE_INVALID_STATE when the current event is not a request.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_path(
    conn: *mut wsengine_conn,
    out: *mut wsengine_bytes,
) -> wsengine_status {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle and `out` NULL or
    // writable.
    unsafe { request_str(conn, out, |r| Some(r.path())) }
}

/// The Host header of the current WSENGINE_EVENT_REQUEST.
///
/// # Safety
///
/// As wsengine_request_path().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_host(
    conn: *mut wsengine_conn,
    out: *mut wsengine_bytes,
) -> wsengine_status {
    // SAFETY: as wsengine_request_path.
    unsafe { request_str(conn, out, |r| Some(r.host())) }
}

/// The Origin header of the current WSENGINE_EVENT_REQUEST: WSENGINE_NOT_FOUND when
/// the client sent none (browsers always send one; check it, RFC 6455 section 10.2).
///
/// # Safety
///
/// As wsengine_request_path().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_origin(
    conn: *mut wsengine_conn,
    out: *mut wsengine_bytes,
) -> wsengine_status {
    // SAFETY: as wsengine_request_path.
    unsafe { request_str(conn, out, |r| r.origin()) }
}

/// Shared body of the request string accessors.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `out` is NULL or writable.
unsafe fn request_str(
    conn: *mut wsengine_conn,
    out: *mut wsengine_bytes,
    get: impl FnOnce(&wsengine::Request) -> Option<&str>,
) -> S {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: by this function's contract `out` is NULL or writable.
        let slot = unsafe { self::out(out, "out") }?;
        match get(h.request()?) {
            Some(s) => {
                slot.write(bytes_out(s.as_bytes()));
                Ok(S::WSENGINE_OK)
            }
            None => {
                slot.write(bytes_out(&[]));
                Ok(S::WSENGINE_NOT_FOUND)
            }
        }
    };
    // SAFETY: by this function's contract.
    unsafe { enter(conn, body) }
}

/// The value of the first header called `name` (ASCII case-insensitive) in the current
/// WSENGINE_EVENT_REQUEST: WSENGINE_NOT_FOUND when there is none.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `name` points to `name_len` readable bytes (NULL
/// only with 0); `value` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_header(
    conn: *mut wsengine_conn,
    name: *const u8,
    name_len: usize,
    value: *mut wsengine_bytes,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `name_len` readable bytes at `name`.
        let name = unsafe { bytes_in(name, name_len, "name") }?;
        // SAFETY: the caller guarantees `value` is NULL or writable.
        let slot = unsafe { out(value, "value") }?;
        let found = h.request()?.header(utf8(name, "name")?);
        slot.write(bytes_out(found.unwrap_or_default()));
        Ok(found.map_or(S::WSENGINE_NOT_FOUND, |_| S::WSENGINE_OK))
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// How many header lines the current WSENGINE_EVENT_REQUEST has (for
/// wsengine_request_header_at).
///
/// # Safety
///
/// `conn` is NULL or a live handle; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_header_count(
    conn: *mut wsengine_conn,
    count: *mut usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `count` is NULL or writable.
        let slot = unsafe { out(count, "count") }?;
        slot.write(h.request()?.headers().len());
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Header line `index` (from 0, in the order sent, names as sent) of the current
/// WSENGINE_EVENT_REQUEST: WSENGINE_NOT_FOUND when `index` is past the last one.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `header` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_header_at(
    conn: *mut wsengine_conn,
    index: usize,
    header: *mut wsengine_header,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `header` is NULL or writable.
        let slot = unsafe { out(header, "header") }?;
        let found = h.request()?.headers().get(index);
        let (name, value) = found.map_or((&[][..], &[][..]), |x| {
            (x.name.as_bytes(), x.value.as_slice())
        });
        let (name, name_len) = c_bytes(name);
        let (value, value_len) = c_bytes(value);
        slot.write(wsengine_header {
            name,
            name_len,
            value,
            value_len,
        });
        Ok(found.map_or(S::WSENGINE_NOT_FOUND, |_| S::WSENGINE_OK))
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// How many subprotocols the current WSENGINE_EVENT_REQUEST offers.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_protocol_count(
    conn: *mut wsengine_conn,
    count: *mut usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `count` is NULL or writable.
        let slot = unsafe { out(count, "count") }?;
        slot.write(h.request()?.protocols().len());
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Offered subprotocol `index` (from 0, in the client's order of preference) of the
/// current WSENGINE_EVENT_REQUEST: WSENGINE_NOT_FOUND past the last one.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `protocol` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_request_protocol(
    conn: *mut wsengine_conn,
    index: usize,
    protocol: *mut wsengine_bytes,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `protocol` is NULL or writable.
        let slot = unsafe { out(protocol, "protocol") }?;
        let found = h.request()?.protocols().get(index);
        slot.write(bytes_out(found.map_or(&[][..], |p| p.as_bytes())));
        Ok(found.map_or(S::WSENGINE_NOT_FOUND, |_| S::WSENGINE_OK))
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Client: the value of the first header called `name` in the server's response, while
/// the current event is WSENGINE_EVENT_ACCEPTED; WSENGINE_NOT_FOUND when absent.
///
/// # Safety
///
/// As wsengine_request_header().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_response_header(
    conn: *mut wsengine_conn,
    name: *const u8,
    name_len: usize,
    value: *mut wsengine_bytes,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `name_len` readable bytes at `name`.
        let name = unsafe { bytes_in(name, name_len, "name") }?;
        // SAFETY: the caller guarantees `value` is NULL or writable.
        let slot = unsafe { out(value, "value") }?;
        let found = h.response()?.header(utf8(name, "name")?);
        slot.write(bytes_out(found.unwrap_or_default()));
        Ok(found.map_or(S::WSENGINE_NOT_FOUND, |_| S::WSENGINE_OK))
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

// ---- the server's answer to the handshake ----

/// Server: accepts the pending request (after WSENGINE_EVENT_REQUEST), queuing the 101
/// response. `protocol`: the chosen subprotocol, exactly one the client offered, or
/// NULL for none. `headers`: extra response headers (NULL if `header_count` is 0).
/// WSENGINE_INVALID_STATE when no request awaits an answer; WSENGINE_INVALID_ARGUMENT
/// for a subprotocol that was not offered or a bad header, leaving the request pending
/// (accept differently or reject).
///
/// # Safety
///
/// `conn` is NULL or a live handle; `protocol` is NULL or points to `protocol_len`
/// readable bytes; `headers` is NULL (with `header_count` 0) or points to
/// `header_count` headers following the wsengine_header rules.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_accept(
    conn: *mut wsengine_conn,
    protocol: *const u8,
    protocol_len: usize,
    headers: *const wsengine_header,
    header_count: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        let mut accept = Accept::new();
        if !protocol.is_null() {
            // SAFETY: the caller guarantees `protocol_len` readable bytes.
            let p = unsafe { bytes_in(protocol, protocol_len, "protocol") }?;
            accept = accept.protocol(utf8(p, "protocol")?);
        }
        // SAFETY: the caller guarantees `header_count` headers at `headers`.
        for x in unsafe { array_in(headers, header_count, "headers") }? {
            // SAFETY: the caller guarantees each header follows the wsengine_header rules.
            let (name, value) = unsafe { header_in(x, "headers[]") }?;
            accept = accept.header(name, value);
        }
        h.accept(accept)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Server: rejects the pending request with an HTTP response: `status` (100-599, not
/// 101), extra headers, and a body (Content-Length is added). The connection is over
/// once the response is transmitted (wsengine_should_close_transport).
///
/// # Safety
///
/// `conn` is NULL or a live handle; `headers` as in wsengine_accept(); `body` points to
/// `body_len` readable bytes (NULL only with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_reject(
    conn: *mut wsengine_conn,
    status: u16,
    headers: *const wsengine_header,
    header_count: usize,
    body: *const u8,
    body_len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        let mut reject = Reject::new(status);
        // SAFETY: the caller guarantees `header_count` headers at `headers`.
        for x in unsafe { array_in(headers, header_count, "headers") }? {
            // SAFETY: the caller guarantees each header follows the wsengine_header rules.
            let (name, value) = unsafe { header_in(x, "headers[]") }?;
            reject = reject.header(name, value);
        }
        // SAFETY: the caller guarantees `body_len` readable bytes at `body`.
        let body = unsafe { bytes_in(body, body_len, "body") }?;
        h.reject(reject.body(body.to_vec()))?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

// ---- sending ----

/// Queues a text message in one frame. `data` must be valid UTF-8
/// (WSENGINE_INVALID_ARGUMENT otherwise). The bytes are copied. WSENGINE_BLOCKED while
/// the send buffer is full; WSENGINE_NOT_OPEN, WSENGINE_CLOSING or WSENGINE_CLOSED when
/// the connection cannot send.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `data` points to `len` readable bytes (NULL only
/// with 0). `data` may point into the current event (an echo).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_send_text(
    conn: *mut wsengine_conn,
    data: *const u8,
    len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        h.conn.send_text(utf8(data, "data")?)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Queues a binary message in one frame (copied). Errors as wsengine_send_text().
///
/// # Safety
///
/// As wsengine_send_text().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_send_binary(
    conn: *mut wsengine_conn,
    data: *const u8,
    len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        h.conn.send_binary(data)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Queues one fragment of a message (RFC 6455 section 5.4). The first call starts a
/// message of `kind` (a wsengine_message_kind); later calls continue it (same kind)
/// until one passes a nonzero `last`. Text fragments may split code points, but the
/// whole message must be valid UTF-8: a fragment that breaks it is refused
/// (WSENGINE_INVALID_ARGUMENT) without being queued. WSENGINE_INVALID_STATE for a
/// different kind while a message is in progress.
///
/// # Safety
///
/// As wsengine_send_text().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_send_fragment(
    conn: *mut wsengine_conn,
    kind: i32,
    data: *const u8,
    len: usize,
    last: i32,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        let kind = handle::message_kind(kind)?;
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        h.conn.send_fragment(kind, data, last != 0)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Queues a Ping with a payload of at most 125 bytes (WSENGINE_INVALID_ARGUMENT beyond).
///
/// # Safety
///
/// As wsengine_send_text().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_ping(
    conn: *mut wsengine_conn,
    data: *const u8,
    len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        h.conn.send(Message::Ping(data.to_vec().into()))?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Queues an unsolicited Pong (a heartbeat), payload at most 125 bytes. Pings are
/// answered automatically when auto_pong is on.
///
/// # Safety
///
/// As wsengine_send_text().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_pong(
    conn: *mut wsengine_conn,
    data: *const u8,
    len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `len` readable bytes at `data`.
        let data = unsafe { bytes_in(data, len, "data") }?;
        h.conn.send(Message::Pong(data.to_vec().into()))?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Starts the closing handshake: queues a Close frame with `code` (1000-1003,
/// 1007-1014 or 3000-4999) and a UTF-8 `reason` of at most 123 bytes. No data may be
/// sent afterwards; received data still arrives until the peer's Close (then
/// WSENGINE_EVENT_CLOSED) or the close timeout. Accepted even when the send buffer is
/// full.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `reason` points to `reason_len` readable bytes
/// (NULL only with 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_close(
    conn: *mut wsengine_conn,
    code: u16,
    reason: *const u8,
    reason_len: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `reason_len` readable bytes at `reason`.
        let reason = unsafe { bytes_in(reason, reason_len, "reason") }?;
        h.close(code, utf8(reason, "reason")?)?;
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

// ---- transmitting ----

/// The bytes to write to the transport next: `out->data`/`out->len` (len 0 when there
/// are none). Write them, then call wsengine_advance_transmit() with the number of
/// bytes written; repeat until len is 0. The pointer stays valid until the next call on
/// this handle other than the read-only getters (wsengine_wants_write, ...).
///
/// # Safety
///
/// `conn` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_poll_transmit(
    conn: *mut wsengine_conn,
    out: *mut wsengine_bytes,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `out` is NULL or writable.
        let slot = unsafe { self::out(out, "out") }?;
        slot.write(bytes_out(h.conn.poll_transmit()));
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Every run of bytes waiting for the transport, in order, for one vectored write
/// (writev): fills at most `capacity` entries of `segments` and stores how many in
/// `*count` (0: nothing to write). Advance with wsengine_advance_transmit(). Pointers
/// are valid as for wsengine_poll_transmit().
///
/// # Safety
///
/// `conn` is NULL or a live handle; `segments` points to writable memory for
/// `capacity` wsengine_bytes (NULL only with 0); `count` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_poll_transmit_segments(
    conn: *mut wsengine_conn,
    segments: *mut wsengine_bytes,
    capacity: usize,
    count: *mut usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        // SAFETY: the caller guarantees `count` is NULL or writable.
        let count = unsafe { out(count, "count") }?;
        let slots: &mut [MaybeUninit<wsengine_bytes>] = if capacity == 0 {
            &mut []
        } else if segments.is_null() || !segments.is_aligned() {
            return Err(Failure::invalid("segments: NULL or misaligned"));
        } else if capacity > isize::MAX as usize / size_of::<wsengine_bytes>() {
            return Err(Failure::invalid("capacity: too large"));
        } else {
            // SAFETY: non-NULL, aligned, size fits isize; the caller guarantees
            // writable memory for `capacity` elements, which MaybeUninit lets us
            // treat as uninitialised.
            unsafe { core::slice::from_raw_parts_mut(segments.cast::<MaybeUninit<_>>(), capacity) }
        };
        let mut iovecs = [IoSlice::new(&[]); MAX_TRANSMIT_SEGMENTS];
        let filled = h.conn.poll_transmit_vectored(&mut iovecs);
        let mut n = 0;
        for (slot, segment) in slots.iter_mut().zip(&iovecs[..filled]) {
            slot.write(bytes_out(segment));
            n += 1;
        }
        count.write(n);
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

/// Marks `n` bytes of the transmit buffer as written to the transport.
/// WSENGINE_INVALID_ARGUMENT (and nothing advanced) when fewer than `n` bytes wait.
///
/// # Safety
///
/// `conn` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_advance_transmit(
    conn: *mut wsengine_conn,
    n: usize,
) -> wsengine_status {
    let body = |h: &mut wsengine_conn| -> Result<S> {
        let pending = h.conn.transmit_len();
        if n > pending {
            return Err(Failure::invalid(format!(
                "n: {n} bytes advanced but only {pending} wait"
            )));
        }
        h.conn.advance_transmit(n);
        Ok(S::WSENGINE_OK)
    };
    // SAFETY: the caller guarantees `conn` is NULL or a live, unshared handle.
    unsafe { enter(conn, body) }
}

// ---- getters ----

/// The lifecycle state: a wsengine_state value, or a negative wsengine_status
/// (WSENGINE_INVALID_ARGUMENT for NULL, WSENGINE_PANIC for a poisoned handle).
///
/// # Safety
///
/// `conn` is NULL or a live handle not being changed by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_get_state(conn: *const wsengine_conn) -> i32 {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    status_of(unsafe { peek(conn, |h| h.state() as i32) })
}

/// 1 when wsengine_poll_transmit() has bytes to write (register for writability), 0 when
/// not, or a negative wsengine_status (as wsengine_get_state).
///
/// # Safety
///
/// As wsengine_get_state().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_wants_write(conn: *const wsengine_conn) -> i32 {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    status_of(unsafe { peek(conn, |h| i32::from(h.conn.wants_write())) })
}

/// 1 when the transport should be closed now (the connection is over and everything
/// queued was transmitted; a server closes first, a client waits for the server's EOF
/// or the close timer), 0 when not, or a negative wsengine_status.
///
/// # Safety
///
/// As wsengine_get_state().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_should_close_transport(conn: *const wsengine_conn) -> i32 {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    status_of(unsafe { peek(conn, |h| i32::from(h.conn.should_close_transport())) })
}

/// 1 while sends fail with WSENGINE_BLOCKED (max_send_buffer bytes or more wait for the
/// transport): stop reading from this peer until it is 0 again (backpressure). 0 when
/// not, or a negative wsengine_status.
///
/// # Safety
///
/// As wsengine_get_state().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_is_send_blocked(conn: *const wsengine_conn) -> i32 {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    status_of(unsafe { peek(conn, |h| i32::from(h.conn.is_send_blocked())) })
}

/// How many bytes wsengine_recv() would take now, in `*capacity` (SIZE_MAX once the
/// connection is over: bytes are then discarded). Read at most this much from the
/// socket; 0 means poll events first.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `capacity` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_recv_capacity(
    conn: *const wsengine_conn,
    capacity: *mut usize,
) -> wsengine_status {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    let value = match unsafe { peek(conn, |h| h.conn.recv_capacity()) } {
        Ok(v) => v,
        Err(s) => return s,
    };
    // SAFETY: the caller guarantees `capacity` is NULL or writable.
    match unsafe { out(capacity, "capacity") } {
        Ok(slot) => {
            slot.write(value);
            S::WSENGINE_OK
        }
        Err(f) => f.status,
    }
}

/// The close code of the fatal error that wsengine_poll_event() returned: 1002
/// (protocol error), 1007 (invalid UTF-8 or compressed data), 1008 (policy: too many
/// fragments, or WSENGINE_TIMEOUT from the message timer), 1009 (too big, a compressed
/// message inflating past deflate_max_inflated_size included) as sent in the queued
/// Close frame, 1006 for a keepalive timeout (nothing sent). 0 when there was no fatal
/// error, it happened during the handshake, or `conn` is NULL.
///
/// # Safety
///
/// As wsengine_get_state().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_last_close_code(conn: *const wsengine_conn) -> u16 {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    unsafe { peek(conn, |h| h.last_close_code()) }.unwrap_or(0)
}

/// The permessage-deflate parameters in force: stores them in `*params` and returns
/// WSENGINE_OK once the extension was negotiated (by wsengine_accept, by the server's
/// 101 for a client, or given to wsengine_create_open); WSENGINE_NOT_FOUND (and zeroes)
/// while it is not.
///
/// # Safety
///
/// `conn` is NULL or a live handle; `params` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_get_deflate_params(
    conn: *const wsengine_conn,
    params: *mut wsengine_deflate_params,
) -> wsengine_status {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle.
    let value = match unsafe { peek(conn, wsengine_conn::deflate_params) } {
        Ok(v) => v,
        Err(s) => return s,
    };
    // SAFETY: the caller guarantees `params` is NULL or writable.
    match unsafe { out(params, "params") } {
        Ok(slot) => {
            let found = value.is_some();
            slot.write(value.unwrap_or(wsengine_deflate_params {
                server_no_context_takeover: 0,
                client_no_context_takeover: 0,
                server_max_window_bits: 0,
                client_max_window_bits: 0,
            }));
            if found {
                S::WSENGINE_OK
            } else {
                S::WSENGINE_NOT_FOUND
            }
        }
        Err(f) => f.status,
    }
}

/// A description of the latest error returned by a call on this handle (a fatal error
/// or a refused call), as a NUL-terminated string ("" if none). Valid until the next
/// call on this handle; never free it. For a NULL handle, a static string.
///
/// # Safety
///
/// As wsengine_get_state().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wsengine_last_error_message(conn: *const wsengine_conn) -> *const c_char {
    // SAFETY: the caller guarantees `conn` is NULL or a live handle; the pointer
    // returned points into the handle, which outlives this call.
    match unsafe { peek(conn, |h| h.last_error().as_ptr()) } {
        Ok(p) => p,
        Err(S::WSENGINE_PANIC) => static_cstr(c"a panic inside wsengine poisoned this handle"),
        Err(_) => static_cstr(c"NULL handle"),
    }
}

#[cfg(test)]
#[allow(
    clippy::multiple_unsafe_ops_per_block,
    reason = "tests: runs of C calls share one documented contract"
)]
mod tests {
    use super::*;

    fn server() -> *mut wsengine_conn {
        let mut conn = core::ptr::null_mut();
        // SAFETY: NULL config and request (a server with the defaults), writable `out`.
        let s = unsafe {
            wsengine_create(
                wsengine_role::WSENGINE_ROLE_SERVER as i32,
                core::ptr::null(),
                core::ptr::null(),
                0,
                &mut conn,
            )
        };
        assert_eq!(s, S::WSENGINE_OK);
        conn
    }

    #[test]
    fn a_panic_becomes_wsengine_panic_and_poisons_the_handle() {
        let conn = server();
        // SAFETY: a live handle.
        let s = unsafe { enter(conn, |_| panic!("a bug")) };
        assert_eq!(s, S::WSENGINE_PANIC);
        // SAFETY: a live (poisoned) handle.
        unsafe {
            assert_eq!(wsengine_recv_eof(conn), S::WSENGINE_PANIC);
            assert_eq!(wsengine_get_state(conn), S::WSENGINE_PANIC as i32);
            assert_eq!(wsengine_wants_write(conn), S::WSENGINE_PANIC as i32);
            let message = core::ffi::CStr::from_ptr(wsengine_last_error_message(conn));
            assert!(message.to_bytes().starts_with(b"a panic"));
            wsengine_destroy(conn);
        }
    }

    #[test]
    fn a_panic_in_a_getter_is_caught() {
        let conn = server();
        // SAFETY: a live handle.
        let r = unsafe { peek(conn, |_| -> i32 { panic!("a bug") }) };
        assert_eq!(r, Err(S::WSENGINE_PANIC));
        // SAFETY: a live handle, destroyed once.
        unsafe { wsengine_destroy(conn) };
    }

    #[test]
    fn the_header_names_every_status() {
        for s in -11..=2 {
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { core::ffi::CStr::from_ptr(wsengine_status_name(s)) };
            assert_ne!(name.to_bytes(), b"WSENGINE_UNKNOWN", "{s}");
        }
    }
}
