/** The table of builds the dashboard and the builds page both show. */
import type { BuildSummary } from './api.js';
import { onLink } from './router.js';

export function BuildsTable({ builds }: { builds: BuildSummary[] | undefined }) {
  return (
    <table>
      <thead>
        <tr>
          <th>Build</th>
          <th>Status</th>
          <th>Tasks</th>
          <th>By</th>
          <th>Created</th>
        </tr>
      </thead>
      <tbody>
        {(builds ?? []).map((b) => (
          <tr key={b.id} data-testid={`build-${b.id}`}>
            <td>
              <a href={`/builds/${b.id}`} onClick={(e) => onLink(e, `/builds/${b.id}`)}>
                #{b.id}
                {b.name ? ` ${b.name}` : ''}
              </a>
            </td>
            <td>
              <span class={`pill ${b.status}`}>{b.status}</span>
            </td>
            <td>
              {b.counts.succeeded} / {b.counts.total} done
              {b.counts.failed > 0 ? `, ${b.counts.failed} failed` : ''}
            </td>
            <td>{b.createdBy}</td>
            <td>{new Date(b.createdAt).toLocaleString()}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
