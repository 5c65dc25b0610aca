/*
 * version.c — the library's version at run time.
 *
 * The SS_VERSION_* macros tell a program which header it was compiled
 * with; these functions tell it which library it actually loaded, which
 * for a shared library may be a later release with the same SONAME.
 * Compiling the header's macros into the library is what makes the two
 * comparable: a program can refuse to run with a library older than a
 * feature it needs (ss_version() < SS_VERSION_ENCODE(0, 2, 0)).
 */
#include "internal.h"

/* The header's numbers must fit SS_VERSION_ENCODE's 8-bit fields, or two
 * versions could encode to the same number. */
_Static_assert(SS_VERSION_MINOR < 256 && SS_VERSION_PATCH < 256,
               "SS_VERSION_MINOR and SS_VERSION_PATCH must be below 256");

unsigned ss_version(void)
{
    return SS_VERSION_NUMBER;
}

const char *ss_version_string(void)
{
    return SS_VERSION_STRING;
}
