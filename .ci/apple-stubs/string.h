/* A stand-in for <string.h> for check-only Apple builds (see
 * TargetConditionals.h here): the mem* functions ring and blake3 use. */
#ifndef SHOAL_STUB_STRING_H
#define SHOAL_STUB_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
#endif
