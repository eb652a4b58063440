/* A stand-in for <assert.h> for check-only Apple builds (see
 * TargetConditionals.h here). */
#ifndef SHOAL_STUB_ASSERT_H
#define SHOAL_STUB_ASSERT_H
#define assert(x) ((void)0)
#ifndef __cplusplus
#define static_assert _Static_assert
#endif
#endif
