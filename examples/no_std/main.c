/* Runs the no_std example's exchange on the host: links the staticlib (which brings its
 * own allocator and panic handler, and no Rust std) and checks it returns 0. */
#include <stdint.h>
#include <stdio.h>

uint32_t wsengine_no_std_echo(uint64_t now_ticks_ms);

/* The host's precompiled core and alloc were built to unwind and name this symbol; the
 * crate is built with panic = "abort", so it is never called. */
void rust_eh_personality(void) {}

int main(void) {
    uint32_t step = wsengine_no_std_echo(5000);
    if (step != 0) {
        fprintf(stderr, "no_std echo failed at step %u\n", step);
        return 1;
    }
    puts("no_std echo: handshake answered with the RFC's accept key, \"Hello\" echoed");
    return 0;
}
