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
extern char *PasswordHashArgon2id(const char *password, int len);
extern void PasswordArgon2Costs(int *memory_kib, int *iterations, int *parallelism);

#endif							/* IAM_PASSWORD_H */
