/**
 * Admin › Users: who may log in and with which role (admin changes things, viewer looks); add a
 * user, change a role, set a new password (which logs that user out everywhere), delete. The
 * coordinator refuses to lose its last admin. Changes need an admin on the primary.
 */
import { useState } from 'preact/hooks';
import {
  createUser,
  deleteUser,
  listUsers,
  updateUser,
  type Role,
  type SessionView,
  type UserView,
} from './api.js';
import { DangerButton } from './danger-button.js';
import { Notice, type Report } from './notice.js';
import { useList } from './use-list.js';

const ROLES: { role: Role; text: string }[] = [
  { role: 'admin', text: 'admin — runs builds, changes agents, users and settings' },
  { role: 'viewer', text: 'viewer — sees everything, changes nothing' },
];

export function UsersPage({ session, canEdit }: { session: SessionView; canEdit: boolean }) {
  const { items: users, loadError, message, act } = useList(listUsers);

  return (
    <>
      <h1>Users</h1>
      <p class="muted">
        Admins run builds and change agents, users and settings; viewers see everything and change
        nothing. The same logins work on the backup coordinator.
      </p>
      <Notice notice={loadError} />
      <Notice notice={message} />
      {users ? (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Role</th>
              <th>Since</th>
              <th>New password</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <UserRow
                key={`${u.name}:${u.role}`}
                user={u}
                self={u.name === session.user.name}
                canEdit={canEdit}
                report={act}
              />
            ))}
          </tbody>
        </table>
      ) : null}
      <AddUser canEdit={canEdit} report={act} />
    </>
  );
}

function UserRow({
  user,
  self,
  canEdit,
  report,
}: {
  user: UserView;
  self: boolean;
  canEdit: boolean;
  report: Report;
}) {
  const [role, setRole] = useState<Role>(user.role);
  const [password, setPassword] = useState('');
  return (
    <tr data-testid={`user-${user.name}`}>
      <td>
        {user.name}
        {self ? <span class="muted small"> (you)</span> : null}
      </td>
      <td>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void report(updateUser(user.name, { role }), `${user.name} is now ${role}.`).then(
              (ok) => {
                if (!ok) setRole(user.role);
              },
            );
          }}
        >
          <fieldset disabled={!canEdit}>
            <select
              aria-label={`Role of ${user.name}`}
              value={role}
              onChange={(e) => setRole(e.currentTarget.value as Role)}
            >
              <option value="admin">admin</option>
              <option value="viewer">viewer</option>
            </select>
            <button type="submit" disabled={role === user.role}>
              Change role
            </button>
          </fieldset>
        </form>
      </td>
      <td>{new Date(user.createdAt).toLocaleDateString()}</td>
      <td>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void report(
              updateUser(user.name, { password }),
              self
                ? 'Your password is changed; your other sessions are logged out.'
                : `${user.name} has a new password and is logged out everywhere.`,
            ).then((ok) => {
              if (ok) setPassword('');
            });
          }}
        >
          <fieldset disabled={!canEdit}>
            <input
              type="password"
              autocomplete="new-password"
              aria-label={`New password for ${user.name}`}
              minLength={8}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              required
            />
            <button type="submit">Set</button>
          </fieldset>
        </form>
      </td>
      <td>
        <DangerButton
          question={`Delete user ${user.name}? They are logged out at once.`}
          disabled={!canEdit || self}
          title={self ? 'You cannot delete yourself' : undefined}
          onConfirmed={() => void report(deleteUser(user.name), `${user.name} deleted.`)}
        >
          Delete
        </DangerButton>
      </td>
    </tr>
  );
}

function AddUser({ canEdit, report }: { canEdit: boolean; report: Report }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [password, setPassword] = useState('');
  return (
    <section aria-labelledby="add-user-title">
      <h2 id="add-user-title">Add a user</h2>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void report(
            createUser(name, role, password),
            `${name} added as ${role}: they log in with the password you chose.`,
          ).then((ok) => {
            if (!ok) return;
            setName('');
            setPassword('');
          });
        }}
      >
        <fieldset disabled={!canEdit}>
          <label>
            User name
            <input
              value={name}
              autocomplete="off"
              pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,63}"
              title="letters, digits, '.', '_' and '-'; at most 64"
              onInput={(e) => setName(e.currentTarget.value)}
              required
            />
          </label>
          <label>
            Role
            <select
              aria-label="Role"
              value={role}
              onChange={(e) => setRole(e.currentTarget.value as Role)}
            >
              {ROLES.map((r) => (
                <option key={r.role} value={r.role}>
                  {r.text}
                </option>
              ))}
            </select>
          </label>
          <label>
            Password (at least 8 characters)
            <input
              type="password"
              autocomplete="new-password"
              minLength={8}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
              required
            />
          </label>
          <button type="submit">Add user</button>
        </fieldset>
      </form>
    </section>
  );
}
