/*
 * TEST-ONLY Wine workaround, never shipped: scripts/test-windows.sh builds this into a
 * bcryptprimitives.dll placed next to handler.exe in a scratch directory under the target dir.
 *
 * Rust's standard library (1.78+) gets random bytes from ProcessPrng in bcryptprimitives.dll,
 * which every supported Windows has but Debian's Wine 8.0 does not ship, so handler.exe fails
 * to load under that Wine. This DLL exports ProcessPrng and forwards to RtlGenRandom
 * (advapi32!SystemFunction036), which Wine implements on top of the host's random source.
 * Real Windows never sees this file: it is excluded by .funcignore and never staged for publish.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); /* RtlGenRandom */

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG: feed larger requests in chunks. */
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
