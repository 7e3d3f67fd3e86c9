/**
 * Agents: the list with status, version, labels, slots, this coordinator's instance there and the
 * last error in words; agents that dial out marked so, with what they said of their machine, and
 * an Approve button while one that joined with a token waits; add one (its certificate's
 * fingerprint is read and shown to be confirmed against what `muster agent` printed), edit
 * labels, remove. Changes need an admin on the primary.
 */
import { useState } from 'preact/hooks';
import { AgentFacts } from './agent-facts.js';
import { AgentStatus } from './agent-status.js';
import { DangerButton } from './danger-button.js';
import {
  addAgent,
  approveAgent,
  probeAgent,
  removeAgent,
  updateAgent,
  type AgentView,
} from './api.js';
import { labelsOf } from './labels.js';
import { Notice, useReport, type Report } from './notice.js';
import { onLink } from './router.js';

export function AgentsPage({
  agents,
  canEdit,
  standby,
}: {
  agents: AgentView[] | undefined;
  canEdit: boolean;
  /** This coordinator is a backup standing by: it leaves the agents to the primary. */
  standby: boolean;
}) {
  const [message, report] = useReport();
  return (
    <>
      <h1>Agents</h1>
      <Notice notice={message} />
      {agents && agents.length === 0 ? (
        <p class="muted">No agents yet: add the first one below.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Address</th>
              <th>Status</th>
              <th>Version</th>
              <th>Slots in use</th>
              <th>Instance here</th>
              <th>Labels</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(agents ?? []).map((a) => (
              <AgentRow
                key={a.name}
                agent={a}
                canEdit={canEdit}
                standby={standby}
                report={report}
              />
            ))}
          </tbody>
        </table>
      )}
      <AddAgent canEdit={canEdit} report={report} />
    </>
  );
}

function AgentRow({
  agent,
  canEdit,
  standby,
  report,
}: {
  agent: AgentView;
  canEdit: boolean;
  standby: boolean;
  report: Report;
}) {
  const [labels, setLabels] = useState(agent.labels.join(', '));
  return (
    <tr data-testid={`agent-${agent.name}`}>
      <td>
        {agent.name}
        {agent.facts ? <AgentFacts name={agent.name} facts={agent.facts} /> : null}
      </td>
      <td>
        {agent.address}
        {agent.dialsOut ? (
          <div
            class="muted small"
            title="it connects to this coordinator (muster agent --connect): the address is where it last connected from"
          >
            dials out
          </div>
        ) : null}
      </td>
      <td>
        <AgentStatus agent={agent} standby={standby} />
        {agent.lastError ? <div class="muted small">{agent.lastError}</div> : null}
        {agent.approved ? null : (
          <div class="approve">
            <button
              type="button"
              disabled={!canEdit}
              title="let it take tasks: check first that you expected this machine"
              onClick={() =>
                void report(approveAgent(agent.name), `${agent.name} approved: it takes tasks now.`)
              }
            >
              Approve
            </button>
          </div>
        )}
      </td>
      <td>{agent.agentVersion ?? ''}</td>
      <td data-testid={`slots-${agent.name}`}>
        {agent.busySlots} / {agent.slots}
        {agent.slotsFrom === 'last-known' ? (
          <div
            class="muted small"
            title="not connected here: as the agent reported when it last connected"
          >
            last known
          </div>
        ) : null}
      </td>
      <td>
        <code class="small">{agent.instanceKey ?? ''}</code>
      </td>
      <td>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void report(
              updateAgent(agent.name, labelsOf(labels)),
              `Labels of ${agent.name} saved.`,
            );
          }}
        >
          <fieldset disabled={!canEdit}>
            <input
              aria-label={`Labels of ${agent.name}`}
              value={labels}
              onInput={(e) => setLabels(e.currentTarget.value)}
            />
            <button type="submit">Save labels</button>
          </fieldset>
        </form>
      </td>
      <td>
        <DangerButton
          question={`Remove agent ${agent.name}? Its running tasks are retried elsewhere.`}
          disabled={!canEdit}
          onConfirmed={() => void report(removeAgent(agent.name), `${agent.name} removed.`)}
        >
          Remove
        </DangerButton>
      </td>
    </tr>
  );
}

function AddAgent({ canEdit, report }: { canEdit: boolean; report: Report }) {
  const [name, setName] = useState('');
  const [address, setAddress] = useState('');
  const [accessKey, setAccessKey] = useState('');
  const [labels, setLabels] = useState('');
  const [fingerprint, setFingerprint] = useState<string>();
  const [confirmed, setConfirmed] = useState(false);
  const [probeError, setProbeError] = useState<string>();

  const probe = (): void => {
    setFingerprint(undefined);
    setConfirmed(false);
    setProbeError(undefined);
    probeAgent(address)
      .then((r) => setFingerprint(r.fingerprint))
      .catch((err: unknown) => setProbeError((err as Error).message));
  };

  return (
    <section aria-labelledby="add-agent-title">
      <h2 id="add-agent-title">Add an agent</h2>
      {canEdit ? (
        <p class="muted">
          An agent this coordinator cannot reach (behind a firewall or NAT) can dial out to it
          instead: create a join token on{' '}
          <a href="/admin/tokens" onClick={(e) => onLink(e, '/admin/tokens')}>
            Admin › Join tokens
          </a>{' '}
          and start the agent with the command shown there. It appears here, waiting for approval
          unless the token approves it.
        </p>
      ) : null}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (!fingerprint) return;
          void report(
            addAgent({ name, address, accessKey, fingerprint, labels: labelsOf(labels) }),
            `${name} added: the coordinator connects to it now.`,
          );
        }}
      >
        <fieldset disabled={!canEdit}>
          <label>
            Name
            <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
          </label>
          <label>
            Address (HOST:PORT)
            <input
              value={address}
              onInput={(e) => {
                setAddress(e.currentTarget.value);
                setFingerprint(undefined);
              }}
              required
            />
          </label>
          <label>
            <span>
              Access key (printed by <code>muster agent</code> at its first start)
            </span>
            <input
              type="password"
              value={accessKey}
              onInput={(e) => setAccessKey(e.currentTarget.value)}
              required
            />
          </label>
          <label>
            Labels (comma-separated)
            <input value={labels} onInput={(e) => setLabels(e.currentTarget.value)} />
          </label>
          <button type="button" onClick={probe} disabled={address === ''}>
            Read its certificate
          </button>
          <Notice notice={probeError} />
          {fingerprint ? (
            <div class="confirm">
              <p>
                The agent presents the certificate{' '}
                <code data-testid="fingerprint">{fingerprint}</code>
              </p>
              <label class="check">
                <input
                  type="checkbox"
                  checked={confirmed}
                  onChange={(e) => setConfirmed(e.currentTarget.checked)}
                />
                This is the fingerprint <code>muster agent</code> printed
              </label>
            </div>
          ) : null}
          <button type="submit" disabled={!fingerprint || !confirmed}>
            Add agent
          </button>
        </fieldset>
      </form>
    </section>
  );
}
