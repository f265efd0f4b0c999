/*-------------------------------------------------------------------------
 *
 * auth.h
 *		Sign-in primitives (auth.c) and TOTP (totp.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_AUTH_H
#define IAM_AUTH_H

extern void AuthInit(void);

#endif							/* IAM_AUTH_H */
