/** Blobs as the API answers about them (/api/v1/blobs/…). */

/** POST /api/v1/blobs/missing: the hashes asked about that the coordinator lacks (upload them). */
export interface MissingBlobsView {
  missing: string[];
}
