// Which variants of the native decode kernel this CPU can run (hflash.tiles.NativeKernels asks once at load).
// Bit 0: AVX2 + FMA + F16C (hflash_decode_tiles_avx2); bit 1: AVX-512 F/BW/VL on top of those
// (hflash_decode_tiles_avx512). 0: neither, the Java kernels run.
#include <stdint.h>

int32_t hflash_native_abi(void) { return 3; } /* bumped whenever an exported signature changes */

int32_t hflash_native_isa(void) {
    __builtin_cpu_init();
    int32_t r = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        r |= 1;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl"))
            r |= 2;
    }
    return r;
}
