/**
 * A primary's first start: its instance id and key, and the admin user (a backup gets all three
 * from its primary). The admin's password is MUSTER_ADMIN_PASSWORD when set, else generated,
 * saved under the data dir and returned so that it is printed once.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { writeAtomic } from '../common/atomic-file.js';
import { newInstanceKey } from '../protocol/handshake.js';
import { generatePassword, hashPassword } from './auth/passwords.js';
import { INSTANCE_ID_SETTING, INSTANCE_KEY_SETTING } from './identity.js';
import type { Store } from './store/store.js';

/** The generated admin password, when one was made on this start. */
export async function bootstrapPrimary(
  store: Store,
  options: { dataDir: string; passwordCost: number },
): Promise<string | undefined> {
  if (store.getSetting(INSTANCE_ID_SETTING) === undefined)
    store.setSetting(INSTANCE_ID_SETTING, randomUUID());
  if (store.getSetting(INSTANCE_KEY_SETTING) === undefined)
    store.setSetting(INSTANCE_KEY_SETTING, newInstanceKey());
  if (store.listUsers().length > 0) return undefined;
  const given = process.env.MUSTER_ADMIN_PASSWORD;
  const password = given !== undefined && given !== '' ? given : generatePassword();
  store.createUser('admin', 'admin', await hashPassword(password, { log2N: options.passwordCost }));
  if (given !== undefined && given !== '') return undefined;
  await writeAtomic(join(options.dataDir, 'admin-password'), `${password}\n`, 0o600);
  return password;
}
