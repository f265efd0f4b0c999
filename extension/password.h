/*-------------------------------------------------------------------------
 *
 * password.h
 *		Password hashing and policy (argon2id).
 *
 *-------------------------------------------------------------------------
 */
#ifndef IAM_PASSWORD_H
#define IAM_PASSWORD_H

extern void PasswordInit(void);

#endif							/* IAM_PASSWORD_H */
