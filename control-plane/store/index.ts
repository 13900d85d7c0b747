// The control plane's Store: one key/value interface (policies, registrations, sync status, CA
// material, the admin token hash) with a file-directory and an etcd implementation. Imports
// nothing else from the repo.
export { STORE_ERRORS, StoreError, isStoreError, type StoreErrorCode } from './errors.js'
export { checkKey, underPrefix, type Store, type StoreEvent, type StoreWatch } from './types.js'
export { FileStore, type FileStoreOptions } from './file.js'
export { openStore } from './open.js'
