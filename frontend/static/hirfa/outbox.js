// The chat outbox kept in IndexedDB, shared by the page (socket.js imports it) and the
// service worker (the hub serves sw.js with this file in front of it, its `export`
// keywords dropped: a service worker is a classic script, and every browser that has
// service workers runs it so). Plain declarations only, no imports.

/** The database, its store and the background sync's tag. */
export const OUTBOX_DB = "hirfa";
export const OUTBOX_STORE = "outbox";
export const OUTBOX_SYNC = "hirfa-outbox";

/** Run `fn(store)` in one IndexedDB transaction of the outbox store; resolves with what
 * its last request gave. Rejects where IndexedDB is missing (private mode): the
 * outbox then lives in the page only. */
export function outboxStore(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(OUTBOX_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(OUTBOX_STORE, { keyPath: "client_id" });
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(OUTBOX_STORE, mode);
      const request = fn(tx.objectStore(OUTBOX_STORE));
      tx.oncomplete = () => {
        db.close();
        resolve(request && request.result);
      };
      tx.onerror = tx.onabort = () => {
        db.close();
        reject(tx.error);
      };
    };
  });
}
