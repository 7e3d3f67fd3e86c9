import type { FramedConnection } from '../connection.js';
import type { MusterError } from '../errors.js';
import type { ClientWireMessage } from '../messages.js';
import type { RequestTable } from './request-table.js';

/** What moving blobs needs of the client: its connection, its requests, and why it closed. */
export interface BlobTransferContext {
  conn: FramedConnection<ClientWireMessage>;
  requests: RequestTable;
  closedWith(): MusterError | undefined;
}
